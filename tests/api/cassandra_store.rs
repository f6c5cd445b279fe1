//! The Cassandra store's de-duplication, below HTTP: the first write of an event id wins
//! across concurrent writers, a resend is a duplicate, and a batch retried after its rows
//! were lost (claim written, rows not) stores them. Like every Cassandra test: listed as
//! ignored unless run with `--include-ignored`.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use volcanion::config::Config;
use volcanion::model::{Event, JsonObject};
use volcanion::store::cassandra::CassandraStore;
use volcanion::store::{EventFilter, EventQuery, EventScope, EventStore, WriteOutcome};

use crate::helpers::{Backend, KeyspaceCleanup, cql_session};

fn event(partner_id: Uuid, event_id: &str, correlation_id: &str) -> Event {
    let timestamp: DateTime<Utc> = "2026-11-20T10:00:00.123456789Z".parse().unwrap();
    Event {
        event_id: event_id.to_string(),
        partner_id,
        subsystem_id: Uuid::now_v7(),
        event_type: "order".to_string(),
        timestamp,
        received_at: Utc::now(),
        user_id: Some("u1".to_string()),
        anonymous_id: None,
        properties: JsonObject::empty(),
        context: JsonObject::empty(),
        is_valid: true,
        validation_errors: Vec::new(),
        correlation_id: correlation_id.to_string(),
        enrichment: None,
        client_event_id: true,
    }
}

/// An event as a read returns it (whether the client chose the id is not stored).
fn as_read(event: &Event) -> Event {
    Event {
        enrichment: None,
        client_event_id: false,
        ..event.clone()
    }
}

async fn stored(store: &CassandraStore, partner_id: Uuid) -> Vec<Event> {
    stored_in(store, EventScope::Partner(partner_id)).await
}

/// The listing of one events table: by partner, or by subsystem.
async fn stored_in(store: &CassandraStore, scope: EventScope) -> Vec<Event> {
    let query = EventQuery {
        scope,
        from: "2026-11-20T00:00:00Z".parse().unwrap(),
        to: "2026-11-21T00:00:00Z".parse().unwrap(),
        filter: EventFilter::default(),
        limit: 100,
        cursor: None,
        with_payload: true,
    };
    store.query_events(&query).await.unwrap().items
}

async fn open(test: &str) -> (CassandraStore, Config, KeyspaceCleanup) {
    let backend = Backend::cassandra_from_env(test);
    let cleanup = KeyspaceCleanup::new(backend);
    let mut config = Config::defaults();
    backend.apply(&mut config);
    let store = CassandraStore::open(&config.cassandra).await.unwrap();
    (store, config, cleanup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn concurrent_writers_of_one_event_id_store_it_once() {
    let (store, _config, _cleanup) = open("concurrent_writers_of_one_event_id_store_it_once").await;
    let store = std::sync::Arc::new(store);
    let partner_id = Uuid::now_v7();
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let store = std::sync::Arc::clone(&store);
            let resend = event(partner_id, "order-1", &format!("writer-{writer}"));
            tokio::spawn(async move { store.write_events(&[resend]).await.unwrap() })
        })
        .collect();
    let mut total = WriteOutcome::default();
    for writer in writers {
        let outcome = writer.await.unwrap();
        total.inserted += outcome.inserted;
        total.duplicates += outcome.duplicates;
    }
    // A writer that finds the id claimed but its rows not there yet writes the same row
    // itself rather than call it a duplicate before it exists (`event_claims`), so more
    // than one may count it inserted; the row is one.
    assert_eq!(total.inserted + total.duplicates, 8);
    assert!(total.inserted >= 1, "{total:?}");
    let events = stored(&store, partner_id).await;
    assert_eq!(events.len(), 1);
}

#[tokio::test]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn a_resend_is_a_duplicate_and_a_retried_batch_restores_lost_rows() {
    let (store, config, _cleanup) =
        open("a_resend_is_a_duplicate_and_a_retried_batch_restores_lost_rows").await;
    let partner_id = Uuid::now_v7();
    let first = event(partner_id, "order-2", "first");
    let outcome = store
        .write_events(std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        WriteOutcome {
            inserted: 1,
            duplicates: 0
        }
    );

    let resend = event(partner_id, "order-2", "second");
    let outcome = store.write_events(&[resend]).await.unwrap();
    assert_eq!(
        outcome,
        WriteOutcome {
            inserted: 0,
            duplicates: 1
        }
    );
    assert_eq!(stored(&store, partner_id).await, vec![as_read(&first)]);

    // A writer that died after its claim but before its rows: the claim stays, rows vanish.
    let session = cql_session(&config).await;
    let keyspace = &config.cassandra.keyspace;
    for bucket in 0..config.cassandra.partner_buckets as i32 {
        session
            .query_unpaged(
                format!("DELETE FROM {keyspace}.events_by_partner_day WHERE partner_id = ? AND day = ? AND bucket = ?"),
                (partner_id, first.timestamp.date_naive(), bucket),
            )
            .await
            .unwrap();
    }
    assert!(stored(&store, partner_id).await.is_empty());

    let outcome = store
        .write_events(std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        WriteOutcome {
            inserted: 1,
            duplicates: 0
        }
    );
    assert_eq!(stored(&store, partner_id).await, vec![as_read(&first)]);
}

/// Deletes an event's rows from one events table, as a writer that died between its claim
/// and (some of) its rows leaves it.
async fn delete_rows(config: &Config, table: &str, owner: Uuid, event: &Event) {
    let session = cql_session(config).await;
    let keyspace = &config.cassandra.keyspace;
    let owner_column = match table {
        "events_by_partner_day" => "partner_id",
        _ => "subsystem_id",
    };
    for bucket in 0..config.cassandra.partner_buckets as i32 {
        session
            .query_unpaged(
                format!("DELETE FROM {keyspace}.{table} WHERE {owner_column} = ? AND day = ? AND bucket = ?"),
                (owner, event.timestamp.date_naive(), bucket),
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn a_resend_after_a_claim_without_rows_is_stored_at_the_claimed_key() {
    let (store, config, _cleanup) =
        open("a_resend_after_a_claim_without_rows_is_stored_at_the_claimed_key").await;
    let partner_id = Uuid::now_v7();
    let first = event(partner_id, "order-3", "first");
    store
        .write_events(std::slice::from_ref(&first))
        .await
        .unwrap();
    // The first writer died after its claim, before its rows (kill -9 between the two).
    delete_rows(&config, "events_by_partner_day", partner_id, &first).await;
    delete_rows(
        &config,
        "events_by_subsystem_day",
        first.subsystem_id,
        &first,
    )
    .await;

    // The client's resend: its own receive time and correlation id, and (no timestamp in
    // the request) a time the service stamped a moment later.
    let mut resend = event(partner_id, "order-3", "resend");
    resend.subsystem_id = first.subsystem_id;
    resend.timestamp = first.timestamp + chrono::Duration::milliseconds(1_500);
    let outcome = store
        .write_events(std::slice::from_ref(&resend))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        WriteOutcome {
            inserted: 1,
            duplicates: 0
        },
        "a claim without rows is no proof of a stored event"
    );
    let claimed_time = DateTime::from_timestamp_millis(first.timestamp.timestamp_millis()).unwrap();
    let expected = Event {
        timestamp: claimed_time,
        ..as_read(&resend)
    };
    assert_eq!(stored(&store, partner_id).await, vec![expected.clone()]);
    assert_eq!(
        stored_in(&store, EventScope::Subsystem(first.subsystem_id)).await,
        vec![expected]
    );

    // And once stored, a further resend is a duplicate again.
    let outcome = store.write_events(&[resend]).await.unwrap();
    assert_eq!(outcome.duplicates, 1);
    assert_eq!(stored(&store, partner_id).await.len(), 1);
}

#[tokio::test]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn a_resend_completes_an_event_missing_from_the_subsystem_table() {
    let (store, config, _cleanup) =
        open("a_resend_completes_an_event_missing_from_the_subsystem_table").await;
    let partner_id = Uuid::now_v7();
    let first = event(partner_id, "order-4", "first");
    store
        .write_events(std::slice::from_ref(&first))
        .await
        .unwrap();
    delete_rows(
        &config,
        "events_by_subsystem_day",
        first.subsystem_id,
        &first,
    )
    .await;
    assert!(
        stored_in(&store, EventScope::Subsystem(first.subsystem_id))
            .await
            .is_empty()
    );

    let mut resend = event(partner_id, "order-4", "resend");
    resend.subsystem_id = first.subsystem_id;
    let outcome = store.write_events(&[resend]).await.unwrap();
    assert_eq!(outcome.duplicates, 1, "the event itself was stored before");
    assert_eq!(stored(&store, partner_id).await, vec![as_read(&first)]);
    assert_eq!(
        stored_in(&store, EventScope::Subsystem(first.subsystem_id)).await,
        vec![as_read(&first)],
        "the first write's row completes the other table"
    );
}

#[tokio::test]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn a_client_id_naming_a_server_made_event_is_a_duplicate() {
    let (store, _config, _cleanup) =
        open("a_client_id_naming_a_server_made_event_is_a_duplicate").await;
    let partner_id = Uuid::now_v7();
    let server_id = Uuid::now_v7().to_string();
    let server_made = Event {
        enrichment: None,
        client_event_id: false,
        ..event(partner_id, &server_id, "server")
    };
    store
        .write_events(std::slice::from_ref(&server_made))
        .await
        .unwrap();
    let forged = Event {
        event_type: "refund".to_string(),
        ..event(partner_id, &server_id, "forged")
    };
    for _ in 0..2 {
        let outcome = store
            .write_events(std::slice::from_ref(&forged))
            .await
            .unwrap();
        assert_eq!(
            outcome.duplicates, 1,
            "never replaces the server-made event"
        );
    }
    assert_eq!(
        stored(&store, partner_id).await,
        vec![as_read(&server_made)]
    );
}

/// An absent value (no anonymous id, no validation errors, no enrichment) is left unset,
/// not written as null: a null is a tombstone that every later read of the day steps over.
/// Cassandra's own trace of a read says how many it met.
#[tokio::test]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn absent_values_write_no_tombstones() {
    let (store, config, _cleanup) = open("absent_values_write_no_tombstones").await;
    let partner_id = Uuid::now_v7();
    let known = event(partner_id, "known-user", "c1");
    let anonymous = Event {
        user_id: None,
        anonymous_id: Some("a1".to_string()),
        ..event(partner_id, "anonymous-user", "c2")
    };
    store.write_events(&[known, anonymous]).await.unwrap();

    let session = cql_session(&config).await;
    let keyspace = &config.cassandra.keyspace;
    let mut select = scylla::statement::Statement::new(format!(
        "SELECT * FROM {keyspace}.events_by_partner_day WHERE partner_id = ? AND day = ? AND bucket = ?"
    ));
    select.set_tracing(true);
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let (mut live, mut tombstones) = (0, 0);
    for bucket in 0..config.cassandra.partner_buckets as i32 {
        let result = session
            .query_unpaged(select.clone(), (partner_id, day, bucket))
            .await
            .unwrap();
        let trace = session
            .get_tracing_info(&result.tracing_id().unwrap())
            .await
            .unwrap();
        for activity in trace.events.iter().filter_map(|e| e.activity.as_deref()) {
            // "Read 1 live rows and 0 tombstone cells"
            let words: Vec<&str> = activity.split_whitespace().collect();
            if let [
                "Read",
                rows,
                "live",
                "rows",
                "and",
                cells,
                "tombstone",
                "cells",
                ..,
            ] = words[..]
            {
                live += rows.parse::<u32>().unwrap();
                tombstones += cells.parse::<u32>().unwrap();
            }
        }
    }
    assert_eq!(live, 2, "the trace counts both rows");
    assert_eq!(tombstones, 0);
}

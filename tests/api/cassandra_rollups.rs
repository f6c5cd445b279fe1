//! The Cassandra store's rollups, below HTTP: whatever happens to the writes (a batch
//! retried, an `eventId` resent, two instances writing the same events, a writer dying
//! mid-batch, a late event for a folded hour), once the hours settle the rollups equal a
//! recount of the raw events, `verify` agrees, and until then the hours read raw.
//! Like every Cassandra test: listed as ignored unless run with `--include-ignored`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use volcanion::config::Config;
use volcanion::model::{Event, JsonObject};
use volcanion::rollups::{Hour, RollupQuery};
use volcanion::store::cassandra::CassandraStore;
use volcanion::store::{EventStore, RollupStore};

use crate::helpers::{Backend, KeyspaceCleanup, cql_session};

fn event(partner_id: Uuid, subsystem_id: Uuid, n: usize, at: DateTime<Utc>) -> Event {
    Event {
        event_id: format!("e{n}"),
        partner_id,
        subsystem_id,
        event_type: ["view", "buy"][n % 2].to_string(),
        timestamp: at,
        received_at: Utc::now(),
        user_id: Some(format!("u{}", n % 5)),
        anonymous_id: None,
        properties: JsonObject::empty(),
        context: JsonObject::empty(),
        is_valid: !n.is_multiple_of(3),
        validation_errors: Vec::new(),
        correlation_id: format!("c{n}"),
        enrichment: None,
        client_event_id: true,
    }
}

async fn open(config: &Config) -> CassandraStore {
    CassandraStore::open(&config.cassandra).await.unwrap()
}

fn hour(text: &str) -> Hour {
    Hour::of(text.parse().unwrap())
}

/// Counts per hour as the rollups give them, and the hours they leave unsettled.
async fn rolled_up(store: &CassandraStore, partner_id: Uuid) -> (BTreeMap<Hour, u64>, usize) {
    rolled_up_by(store, partner_id, BTreeSet::new()).await
}

/// The same, asking for the 20th as one day rollup (given when it is current).
async fn rolled_up_as_a_day(
    store: &CassandraStore,
    partner_id: Uuid,
) -> (BTreeMap<Hour, u64>, usize) {
    let day = BTreeSet::from([hour("2026-11-20T00:00:00Z")]);
    rolled_up_by(store, partner_id, day).await
}

async fn rolled_up_by(
    store: &CassandraStore,
    partner_id: Uuid,
    whole_days: BTreeSet<Hour>,
) -> (BTreeMap<Hour, u64>, usize) {
    let query = RollupQuery {
        partner_id,
        subsystem_id: None,
        event_type: None,
        from: hour("2026-11-20T00:00:00Z"),
        to: hour("2026-11-21T00:00:00Z"),
        whole_days,
        include_bots: false,
    };
    let read = store.hourly_rollups(&query).await.unwrap();
    assert!(read.hours.iter().all(|rollup| rollup.actors.is_some()));
    let counts = read
        .hours
        .iter()
        .map(|rollup| {
            (
                rollup.hour,
                rollup.cells.iter().map(|cell| cell.count).sum(),
            )
        })
        .collect();
    (counts, read.unsettled.len())
}

/// Folds everything written so far (as if `rollup_settle` had passed).
async fn settle(store: &CassandraStore) -> usize {
    let later = Utc::now() + Duration::hours(1);
    store.settle_rollups(later).await.unwrap().folded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn rollups_equal_a_recount_through_every_fault() {
    let backend = Backend::cassandra_from_env("rollups_equal_a_recount_through_every_fault");
    let _cleanup = KeyspaceCleanup::new(backend);
    let mut config = Config::defaults();
    backend.apply(&mut config);
    // Every write here has finished before the next step looks: settled at once.
    config.cassandra.rollup_settle = std::time::Duration::from_millis(1);
    let store = Arc::new(open(&config).await);
    let partner = Uuid::now_v7();
    let subsystem = Uuid::now_v7();
    let ten: DateTime<Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
    let events: Vec<Event> = (0..60)
        .map(|n| event(partner, subsystem, n, ten + Duration::minutes(n as i64 * 2)))
        .collect();

    // A writer that dies mid-batch: half its events stored, then the whole batch again
    // (a retry of the very same write, with the same fingerprints).
    store.write_events(&events[..30]).await.unwrap();
    let outcome = store.write_events(&events).await.unwrap();
    assert_eq!(outcome.inserted, 60, "a retry rewrites its own rows");
    // Two instances writing the same batch at once, and a resend of one id with new
    // content (a duplicate: not stored, not counted).
    let other = Arc::new(open(&config).await);
    let (first, second) = tokio::join!(store.write_events(&events), other.write_events(&events));
    assert_eq!(first.unwrap().inserted + second.unwrap().inserted, 120);
    let mut resend = events[7].clone();
    resend.correlation_id = "resent".into();
    assert_eq!(store.write_events(&[resend]).await.unwrap().duplicates, 1);

    let (counts, unsettled) = rolled_up(&store, partner).await;
    assert!(
        counts.is_empty(),
        "nothing is folded before the hours settle"
    );
    assert_eq!(unsettled, 2, "10:00 and 11:00 are read raw until then");
    assert_eq!(settle(&store).await, 2);
    let (counts, unsettled) = rolled_up(&store, partner).await;
    assert_eq!(unsettled, 0);
    assert_eq!(
        counts,
        BTreeMap::from([
            (hour("2026-11-20T10:00:00Z"), 30),
            (hour("2026-11-20T11:00:00Z"), 30)
        ])
    );
    let day = (hour("2026-11-20T00:00:00Z"), hour("2026-11-21T00:00:00Z"));
    assert_eq!(
        store.verify_rollups(partner, day.0, day.1).await.unwrap(),
        []
    );
    assert_eq!(
        rolled_up_as_a_day(&store, partner).await,
        (BTreeMap::from([(day.0, 60)]), 0),
        "the ended day is one rollup"
    );

    // A late event for the folded 10:00 hour reopens it (read raw) until the next fold.
    let late = event(partner, subsystem, 1_000, ten + Duration::minutes(59));
    store.write_events(&[late]).await.unwrap();
    let (counts, unsettled) = rolled_up(&store, partner).await;
    assert_eq!(
        (counts.len(), unsettled),
        (1, 1),
        "11:00 folded, 10:00 reopened"
    );
    assert_eq!(
        rolled_up_as_a_day(&store, partner).await,
        (counts.clone(), 1),
        "the day row no longer covers the day's folds: hours instead"
    );
    assert_eq!(settle(&store).await, 1);
    let (counts, _) = rolled_up(&store, partner).await;
    assert_eq!(counts[&hour("2026-11-20T10:00:00Z")], 31);
    assert_eq!(
        store.verify_rollups(partner, day.0, day.1).await.unwrap(),
        []
    );
    assert_eq!(
        rolled_up_as_a_day(&store, partner).await,
        (BTreeMap::from([(day.0, 61)]), 0)
    );
    assert_eq!(settle(&store).await, 0, "nothing left to fold");

    // Stored counts that no longer match the raw events are found, and a rebuild fixes
    // them.
    let session = cql_session(&config).await;
    let keyspace = &config.cassandra.keyspace;
    session
        .query_unpaged(
            format!("DELETE FROM {keyspace}.rollup_hour_parts WHERE partner_id = ? AND period = ? AND hour = ?"),
            (partner, (hour("2026-11-20T11:00:00Z").0 / 720) as i32, hour("2026-11-20T11:00:00Z").0 as i32),
        )
        .await
        .unwrap();
    let found = store.verify_rollups(partner, day.0, day.1).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].stored.total(), found[0].recounted.total()),
        (0, 30)
    );
    assert_eq!(
        store.rebuild_rollups(partner, day.0, day.1).await.unwrap(),
        61
    );
    assert_eq!(
        store.verify_rollups(partner, day.0, day.1).await.unwrap(),
        []
    );
    assert_eq!(
        rolled_up_as_a_day(&store, partner).await,
        (BTreeMap::from([(day.0, 61)]), 0)
    );
}

/// Events written before the rollup tables existed have no touch: a rebuild marks their
/// hours, and the next fold counts them.
#[tokio::test]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn a_rebuild_folds_hours_written_before_rollups_existed() {
    let backend =
        Backend::cassandra_from_env("a_rebuild_folds_hours_written_before_rollups_existed");
    let _cleanup = KeyspaceCleanup::new(backend);
    let mut config = Config::defaults();
    backend.apply(&mut config);
    // Every write here has finished before the next step looks: settled at once.
    config.cassandra.rollup_settle = std::time::Duration::from_millis(1);
    let store = open(&config).await;
    let partner = Uuid::now_v7();
    let at: DateTime<Utc> = "2026-11-20T05:30:00Z".parse().unwrap();
    let events: Vec<Event> = (0..5)
        .map(|n| event(partner, Uuid::now_v7(), n, at))
        .collect();
    store.write_events(&events).await.unwrap();
    let session = cql_session(&config).await;
    let keyspace = &config.cassandra.keyspace;
    for table in ["rollup_hours", "rollup_pending"] {
        session
            .query_unpaged(format!("TRUNCATE {keyspace}.{table}"), ())
            .await
            .unwrap();
    }
    let day = (hour("2026-11-20T00:00:00Z"), hour("2026-11-21T00:00:00Z"));
    let found = store.verify_rollups(partner, day.0, day.1).await.unwrap();
    assert_eq!(
        found.len(),
        1,
        "the untouched hour is missing from the rollups"
    );
    store.rebuild_rollups(partner, day.0, day.1).await.unwrap();
    assert_eq!(settle(&store).await, 1);
    let (counts, unsettled) = rolled_up(&store, partner).await;
    assert_eq!((counts[&hour("2026-11-20T05:00:00Z")], unsettled), (5, 0));
    assert_eq!(
        store.verify_rollups(partner, day.0, day.1).await.unwrap(),
        []
    );
}

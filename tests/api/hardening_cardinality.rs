//! Cardinality: one partner sending ever more distinct event types. Its types are bounded
//! (`ingest.max_event_types_per_partner`, refused with a 422 naming `eventType` in every
//! format, across instances), an hour holding thousands of types costs later batches
//! nothing more, and other partners' ingestion and reports don't notice. On Cassandra, the
//! fold of such an hour never writes one mutation past the size limit, and a fold that
//! fails for one partner-hour leaves the round going for the others.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use volcanion::config::Config;
use volcanion::model::{Event, JsonObject};
use volcanion::rollups::{Hour, RollupQuery};
use volcanion::store::cassandra::CassandraStore;
use volcanion::store::{EventStore, RollupStore};

use crate::helpers::{
    Backend, KeyspaceCleanup, Tenant, TestApp, TestAppBuilder, assert_problem, cql_session,
    error_fields, event,
};

const HOUR: &str = "from=2026-11-20T10:00:00Z&to=2026-11-20T11:00:00Z";

fn typed(tenant: &Tenant, event_type: &str, second: u32) -> Value {
    event(
        tenant,
        event_type,
        "u1",
        &format!("2026-11-20T10:{:02}:{:02}Z", second / 60, second % 60),
    )
}

/// A Segment batch (Basic auth with a key pinned to the tenant's subsystem).
async fn segment_batch(app: &TestApp, tenant: &Tenant, batch: &[Value]) -> Value {
    let key = app
        .create_key(
            &tenant.partner_id,
            json!({"scopes": ["ingest"], "subsystemId": tenant.subsystem_id}),
        )
        .await;
    let write_key = key["key"].as_str().unwrap();
    let basic = format!("Basic {}", STANDARD.encode(format!("{write_key}:")));
    let response = app
        .client
        .post(app.url("/v1/batch"))
        .header("authorization", basic)
        .json(&json!({"batch": batch, "sentAt": Utc::now()}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn a_new_event_type_past_the_bound_is_refused_in_every_format(backend: Backend) {
    let (app, twin) = TestAppBuilder::new(backend)
        .configure(|config| config.ingest.max_event_types_per_partner = 3)
        .spawn_pair()
        .await;
    let tenant = app.tenant("types").await;
    for (second, event_type) in ["t0", "t1", "t2"].iter().enumerate() {
        let response = app
            .send_event(&tenant.key, &typed(&tenant, event_type, second as u32))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{event_type}");
    }

    // A single event of a fourth type: 422 naming the field, on either instance (the
    // types are kept in the store, not in one process).
    for instance in [&app, &twin] {
        let response = instance
            .send_event(&tenant.key, &typed(&tenant, "t3", 10))
            .await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(error_fields(&problem), ["eventType"]);
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("max_event_types_per_partner"),
            "{problem}"
        );
    }
    // Its known types keep working, everywhere.
    let known = twin
        .send_event(&tenant.key, &typed(&tenant, "t0", 11))
        .await;
    assert_eq!(known.status(), StatusCode::ACCEPTED);

    // In a batch, only the event of the new type is refused.
    let batch = [
        typed(&tenant, "t1", 12),
        typed(&tenant, "t4", 13),
        typed(&tenant, "t2", 14),
    ];
    let response = app.send_batch(&tenant.key, &batch).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(body["results"][1]["error"]["status"], 422);
    assert_eq!(
        body["results"][1]["error"]["errors"][0]["field"],
        "eventType"
    );

    // Segment: as its other per-message refusals.
    let messages = [
        json!({"type": "track", "event": "t0", "userId": "u1", "timestamp": "2026-11-20T10:30:00Z"}),
        json!({"type": "track", "event": "t5", "userId": "u1"}),
    ];
    let body = segment_batch(&app, &tenant, &messages).await;
    assert_eq!(body["rejected"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["rejected"][0]["index"], 1);
    assert_eq!(body["rejected"][0]["status"], 422);

    // Another partner has a bound of its own.
    let other = app.tenant("others").await;
    for (second, event_type) in ["t3", "t4", "t5"].iter().enumerate() {
        let response = app
            .send_event(&other.key, &typed(&other, event_type, second as u32))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{event_type}");
    }
    app.await_events(&tenant.key, HOUR, 7).await;
}

/// Events of `types` distinct types into 10:00, one batch per 1,000.
async fn send_types(app: &TestApp, tenant: &Tenant, types: std::ops::Range<usize>) {
    let events: Vec<Value> = types
        .map(|n| {
            typed(
                tenant,
                &format!("made_up_event_type_{n:05}"),
                (n % 3_600) as u32,
            )
        })
        .collect();
    for chunk in events.chunks(1_000) {
        let response = app.send_batch(&tenant.key, chunk).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["rejected"], 0, "{body}");
    }
}

async fn a_partner_with_thousands_of_types_in_an_hour_leaves_others_unaffected(backend: Backend) {
    // 2,000 types, not more: admitting each new type re-reads the partner's known ones, so
    // the cost grows with the square of the count (3,000 took over 2 min on Cassandra).
    let app = TestAppBuilder::new(backend)
        .configure(|config| config.ingest.max_event_types_per_partner = 2_000)
        .spawn()
        .await;
    let noisy = app.tenant("noisy").await;
    let quiet = app.tenant("quiet").await;
    send_types(&app, &noisy, 0..2_000).await;
    // Past its bound the noisy partner's new types are refused; its known ones are not.
    let refused = app
        .send_event(&noisy.key, &typed(&noisy, "one_too_many", 1))
        .await;
    assert_problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    send_types(&app, &noisy, 0..1_000).await;

    for second in 0..50 {
        let event_type = ["view", "buy"][second % 2];
        let response = app
            .send_event(&quiet.key, &typed(&quiet, event_type, second as u32))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    app.await_events(&quiet.key, HOUR, 50).await;
    let summary = app.summary(&quiet.key, HOUR).await;
    assert_eq!(summary["totalEvents"], 50, "{summary}");
    assert_eq!(summary["eventCounts"], json!({"buy": 25, "view": 25}));
    let noisy_summary = app.summary(&noisy.key, HOUR).await;
    assert_eq!(noisy_summary["totalEvents"], 3_000, "{noisy_summary}");
}

crate::backend_tests!(
    a_new_event_type_past_the_bound_is_refused_in_every_format,
    a_partner_with_thousands_of_types_in_an_hour_leaves_others_unaffected,
);

fn raw_event(partner_id: Uuid, event_type: String, at: DateTime<Utc>) -> Event {
    Event {
        event_id: Uuid::now_v7().to_string(),
        partner_id,
        subsystem_id: Uuid::from_u128(7),
        event_type,
        timestamp: at,
        received_at: Utc::now(),
        user_id: None,
        anonymous_id: None,
        properties: JsonObject::empty(),
        context: JsonObject::empty(),
        is_valid: true,
        validation_errors: Vec::new(),
        correlation_id: "c".into(),
        enrichment: None,
        client_event_id: false,
    }
}

async fn cassandra_store(test: &str) -> (Config, CassandraStore, KeyspaceCleanup) {
    let backend = Backend::cassandra_from_env(test);
    let cleanup = KeyspaceCleanup::new(backend);
    let mut config = Config::defaults();
    backend.apply(&mut config);
    // Every write here has finished before the round that folds it.
    config.cassandra.rollup_settle = std::time::Duration::from_millis(1);
    let store = CassandraStore::open(&config.cassandra).await.unwrap();
    (config, store, cleanup)
}

/// The counts the rollups give for one partner-hour, and whether it is unsettled.
async fn hour_counts(store: &CassandraStore, partner_id: Uuid, hour: Hour) -> (u64, usize, bool) {
    let query = RollupQuery {
        partner_id,
        subsystem_id: None,
        event_type: None,
        from: hour,
        to: hour.next(),
        whole_days: Default::default(),
        include_bots: false,
    };
    let read = store.hourly_rollups(&query).await.unwrap();
    let cells: Vec<_> = read.hours.iter().flat_map(|rollup| &rollup.cells).collect();
    let total = cells.iter().map(|cell| cell.count).sum();
    (total, cells.len(), !read.unsettled.is_empty())
}

/// A partner id in rollup shard `shard` (of 16), so a test can order partners in a round.
fn partner_in_shard(shard: u128) -> Uuid {
    Uuid::from_u128((Uuid::now_v7().as_u128() & !0xf) | shard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn the_fold_of_an_hour_past_the_mutation_size_succeeds_in_parts() {
    let (_config, store, _cleanup) =
        cassandra_store("the_fold_of_an_hour_past_the_mutation_size_succeeds_in_parts").await;
    let store = Arc::new(store);
    // The current hour (a past day's would also rebuild its day row, slowly).
    let hour = Hour::of(Utc::now());
    let partner = partner_in_shard(3);
    // 22,000 types of 200 four-byte characters: their counts encode to about 17.5 MiB,
    // past Cassandra's largest mutation (16 MiB: half the 32 MiB commit log segment).
    let long_tail = "\u{1D11E}".repeat(194);
    let events: Vec<Event> = (0..22_000)
        .map(|n| {
            let at = hour.start() + Duration::milliseconds(n);
            raw_event(partner, format!("{n:06}{long_tail}"), at)
        })
        .collect();
    for chunk in events.chunks(2_000) {
        store.write_events(chunk).await.unwrap();
    }
    let outcome = store.settle_rollups(Utc::now()).await.unwrap();
    assert_eq!((outcome.folded, outcome.failed), (1, 0), "{outcome:?}");
    assert_eq!(
        hour_counts(&store, partner, hour).await,
        (22_000, 22_000, false)
    );
    assert_eq!(
        store
            .verify_rollups(partner, hour, hour.next())
            .await
            .unwrap(),
        []
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn a_fold_that_fails_for_one_partner_leaves_the_round_going_for_the_others() {
    let (config, store, _cleanup) =
        cassandra_store("a_fold_that_fails_for_one_partner_leaves_the_round_going_for_the_others")
            .await;
    let ten: DateTime<Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
    let hour = Hour::of(ten);
    // The broken partner sits in the first shard a round walks, the others after it.
    let broken = partner_in_shard(0);
    let others = [
        partner_in_shard(0),
        partner_in_shard(7),
        partner_in_shard(15),
    ];
    for partner in std::iter::once(broken).chain(others) {
        let events: Vec<Event> = (0..5)
            .map(|n| raw_event(partner, "view".into(), ten + Duration::minutes(n)))
            .collect();
        store.write_events(&events).await.unwrap();
    }
    // A row of the broken partner's hour that no longer decodes: its recount fails.
    let session = cql_session(&config).await;
    session
        .query_unpaged(
            format!(
                "INSERT INTO {}.events_by_partner_day (partner_id, day, bucket, event_time, event_id) VALUES (?, ?, 0, ?, 'broken')",
                config.cassandra.keyspace
            ),
            (broken, ten.date_naive(), ten + Duration::minutes(30)),
        )
        .await
        .unwrap();

    let outcome = store.settle_rollups(Utc::now()).await.unwrap();
    assert_eq!((outcome.folded, outcome.failed), (3, 1), "{outcome:?}");
    for partner in others {
        assert_eq!(hour_counts(&store, partner, hour).await, (5, 1, false));
    }
    assert!(
        hour_counts(&store, broken, hour).await.2,
        "read raw until it folds"
    );
    // It stays pending: the next round tries it again.
    let again = store.settle_rollups(Utc::now()).await.unwrap();
    assert_eq!((again.folded, again.failed), (0, 1), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn a_rebuild_over_many_days_recounts_hour_by_hour_and_verify_agrees() {
    let (config, store, _cleanup) =
        cassandra_store("a_rebuild_over_many_days_recounts_hour_by_hour_and_verify_agrees").await;
    let partner = partner_in_shard(5);
    let start: DateTime<Utc> = "2026-10-01T00:00:00Z".parse().unwrap();
    let events: Vec<Event> = (0..30 * 4)
        .map(|n| {
            let at = start + Duration::hours(n * 6);
            raw_event(partner, format!("type_{}", n % 3), at)
        })
        .collect();
    store.write_events(&events).await.unwrap();
    store.settle_rollups(Utc::now()).await.unwrap();
    let (from, to) = (Hour::of(start), Hour::of(start + Duration::days(30)));
    assert_eq!(store.verify_rollups(partner, from, to).await.unwrap(), []);

    // Counts lost for one hour: verify finds it, a rebuild over the 30 days mends it.
    let lost = Hour::of(start + Duration::days(12));
    let session = cql_session(&config).await;
    session
        .query_unpaged(
            format!(
                "DELETE FROM {}.rollup_hour_parts WHERE partner_id = ? AND period = ? AND hour = ?",
                config.cassandra.keyspace
            ),
            (partner, (lost.0 / 720) as i32, lost.0 as i32),
        )
        .await
        .unwrap();
    let found = store.verify_rollups(partner, from, to).await.unwrap();
    assert_eq!(
        found.len(),
        1,
        "the hour (its day row is intact): {found:?}"
    );
    assert_eq!((found[0].hour, found[0].stored.total()), (lost, 0));
    assert_eq!(store.rebuild_rollups(partner, from, to).await.unwrap(), 120);
    assert_eq!(store.verify_rollups(partner, from, to).await.unwrap(), []);
}

/// Runs `volcanion rollups ACTION` on a stopped service's data dir; its stdout.
fn rollups_command(data_dir: &std::path::Path, action: &str) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_volcanion"))
        .args(["rollups", action, "--from", "2026-09-01T00:00:00Z"])
        .env_clear()
        .env("VOLCANION_DATA_DIR", data_dir)
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "rollups {action}: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_by_the_binary_over_many_days_gives_the_same_reports_and_verify_agrees() {
    let data_dir = tempfile::TempDir::new().unwrap();
    let service = crate::process::start(data_dir.path(), Backend::Embedded, &[]).await;
    let tenant = service.app.tenant("history").await;
    let start: DateTime<Utc> = "2026-10-01T00:00:00Z".parse().unwrap();
    let events: Vec<Value> = (0..45 * 4)
        .map(|n| {
            let at = (start + Duration::hours(n * 6)).to_rfc3339();
            event(
                &tenant,
                &format!("type_{}", n % 5),
                &format!("u{}", n % 7),
                &at,
            )
        })
        .collect();
    for chunk in events.chunks(100) {
        let response = service.app.send_batch(&tenant.key, chunk).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let range = "from=2026-10-01T00:00:00Z&to=2026-11-15T00:00:00Z";
    let mut before = service.app.summary(&tenant.key, range).await;
    assert_eq!(before["totalEvents"], 180);
    before["dataAsOf"].take();
    let pages = format!("{range}&dimension=page");
    let mut pages_before = service.app.breakdown(&tenant.key, &pages).await;
    assert_eq!(pages_before["items"][0]["events"], 180);
    pages_before["dataAsOf"].take();
    crate::process::terminate(service).await;

    let rebuilt = rollups_command(data_dir.path(), "rebuild");
    assert!(
        rebuilt.contains("rollups rebuilt from 180 events"),
        "{rebuilt}"
    );
    let verified = rollups_command(data_dir.path(), "verify");
    assert!(verified.contains("rollups agree"), "{verified}");

    let service = crate::process::start(data_dir.path(), Backend::Embedded, &[]).await;
    let mut after = service.app.summary(&tenant.key, range).await;
    after["dataAsOf"].take();
    assert_eq!(after, before);
    let mut pages_after = service.app.breakdown(&tenant.key, &pages).await;
    pages_after["dataAsOf"].take();
    assert_eq!(pages_after, pages_before);
    crate::process::terminate(service).await;
}

//! One seeded hour (issue 25's workload: 10,000 pages on a Zipf law, referrers on half the
//! events, UTM on a quarter, 50 countries, 1 in 50 a bot, 200,000 users) written to the
//! Cassandra store and folded: its breakdown cells verify clean against a recount, and the
//! test prints what they take per event (the figure docs/BREAKDOWNS.md asks a store for).
//! Like every Cassandra test: listed as ignored unless run with `--include-ignored`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use volcanion::config::Config;
use volcanion::model::{DeviceType, Enrichment, Event, JsonObject};
use volcanion::rollups::{ActorSketch, BreakdownQuery, CellName, Hour};
use volcanion::store::cassandra::CassandraStore;
use volcanion::store::{BreakdownStore, EventStore, RollupStore};

use crate::helpers::{Backend, KeyspaceCleanup, cql_session};

/// A seeded hour: 10 M events over 30 days.
const EVENTS: usize = 10_000_000 / (30 * 24);

#[allow(dead_code, reason = "each includer uses a part")]
mod seeded {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/seeded.rs"
    ));
}

use seeded::{Laws, Seeded};

fn seeded_event(
    seeded: &mut Seeded,
    laws: &Laws,
    partner_id: Uuid,
    subsystems: &[Uuid],
    n: usize,
    at: DateTime<Utc>,
) -> Event {
    let s = seeded;
    Event {
        event_id: format!("s{n}"),
        partner_id,
        subsystem_id: subsystems[s.zipf(&laws.small) % subsystems.len()],
        event_type: seeded::event_type(s).to_string(),
        timestamp: at,
        received_at: Utc::now(),
        user_id: Some(seeded::user(s)),
        anonymous_id: None,
        properties: JsonObject::empty(),
        context: JsonObject::empty(),
        is_valid: true,
        validation_errors: Vec::new(),
        correlation_id: format!("c{n}"),
        enrichment: Some(seeded::enrichment(s, laws)),
        client_event_id: true,
    }
}

/// Bytes of the cells a fold wrote for `hour` at `grain` (0 hours, 1 days): (rows, value
/// bytes, key bytes) of the parts, and the index rows' key bytes.
async fn stored_bytes(
    session: &scylla::client::session::Session,
    keyspace: &str,
    partner: Uuid,
    (grain, period, hour): (i32, i32, i32),
) -> (usize, usize, usize, usize) {
    let cells: Vec<(Vec<u8>,)> = session
        .query_unpaged(
            format!("SELECT cell FROM {keyspace}.rollup_breakdown_cells WHERE partner_id = ? AND grain = ? AND period = ? AND hour = ?"),
            (partner, grain, period, hour),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(Vec<u8>,)>()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let select = format!(
        "SELECT value_table FROM {keyspace}.rollup_breakdowns WHERE partner_id = ? AND grain = ? AND cell = ? AND period = ? AND hour = ?"
    );
    let (mut rows, mut values, mut keys, mut index) = (0, 0, 0, 0);
    for (cell,) in cells {
        // partner, grain, period, hour, and the name.
        index += 16 + 4 + 4 + 4 + cell.len();
        let parts = session
            .query_unpaged(select.clone(), (partner, grain, cell.clone(), period, hour))
            .await
            .unwrap()
            .into_rows_result()
            .unwrap();
        for part in parts.rows::<(Vec<u8>,)>().unwrap() {
            let (bytes,) = part.unwrap();
            rows += 1;
            values += bytes.len();
            // partner, grain, name, period, hour, part, parts, fold.
            keys += 16 + 4 + cell.len() + 4 + 4 + 4 + 4 + 8;
        }
    }
    (rows, values, keys, index)
}

/// The hour's top 20 human pages: events exact (error 0) and unique users within 2% of a
/// recount of `events`.
async fn top_pages_are_exact(store: &CassandraStore, partner: Uuid, hour: Hour, events: &[Event]) {
    let mut recount: HashMap<&str, (u64, HashSet<&str>)> = HashMap::new();
    for event in events {
        let enrichment = event.enrichment.as_ref().unwrap();
        if !enrichment.bot {
            let page = recount
                .entry(enrichment.page.as_deref().unwrap())
                .or_default();
            page.0 += 1;
            page.1.insert(event.user_id.as_deref().unwrap());
        }
    }
    let query = BreakdownQuery {
        partner_id: partner,
        names: vec![CellName {
            bots: false,
            filter: None,
            dimension: "page".into(),
        }],
        from: hour,
        to: hour.next(),
        whole_days: BTreeSet::new(),
    };
    let read = store.breakdown_cells(&query).await.unwrap();
    assert_eq!((read.tables[0].len(), read.unsettled.len()), (1, 0));
    let table = read.tables[0][0].1.decode().unwrap();
    let mut top: Vec<_> = table.values.iter().collect();
    top.sort_by(|a, b| b.1.events.cmp(&a.1.events).then(a.0.cmp(b.0)));
    for (page, kept) in top.into_iter().take(20) {
        let (events, users) = &recount[page.as_str()];
        assert_eq!((kept.events, kept.error), (*events, 0), "{page}");
        let estimate = ActorSketch::from_bytes(&kept.actors).unwrap().estimate();
        let exact = users.len() as f64;
        assert!(
            (estimate - exact).abs() <= exact * 0.02,
            "{page}: {estimate} vs {exact}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn a_seeded_hour_folds_into_cells_that_verify_clean() {
    let backend = Backend::cassandra_from_env("a_seeded_hour_folds_into_cells_that_verify_clean");
    let _cleanup = KeyspaceCleanup::new(backend);
    let mut config = Config::defaults();
    backend.apply(&mut config);
    config.cassandra.rollup_settle = std::time::Duration::from_millis(1);
    let store = CassandraStore::open(&config.cassandra).await.unwrap();
    let partner = Uuid::now_v7();
    let subsystems = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let ten: DateTime<Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
    let (mut seeded, laws) = (Seeded(25), Laws::new());
    let events: Vec<Event> = (0..EVENTS)
        .map(|n| {
            let at = ten + Duration::milliseconds((n * 3_600_000 / EVENTS) as i64);
            seeded_event(&mut seeded, &laws, partner, &subsystems, n, at)
        })
        .collect();
    let started = Instant::now();
    for batch in events.chunks(500) {
        store.write_events(batch).await.unwrap();
    }
    let written = started.elapsed();
    let started = Instant::now();
    let later = Utc::now() + Duration::hours(1);
    assert_eq!(store.settle_rollups(later).await.unwrap().folded, 1);
    let folded = started.elapsed();

    let hour = Hour::of(ten);
    let (day, day_end) = (hour.day(), Hour(hour.day().0 + 24));
    let started = Instant::now();
    assert_eq!(
        store
            .verify_breakdowns(partner, day, day_end)
            .await
            .unwrap(),
        []
    );
    let verified = started.elapsed();
    top_pages_are_exact(&store, partner, hour, &events).await;

    let session = cql_session(&config).await;
    let keyspace = &config.cassandra.keyspace;
    let per_event = |bytes: usize| bytes as f64 / EVENTS as f64;
    for (grain, period, at) in [(0, hour.0 / 24, hour.0), (1, day.0 / 720, day.0)] {
        let key = (grain, period as i32, at as i32);
        let (rows, values, keys, index) = stored_bytes(&session, keyspace, partner, key).await;
        eprintln!(
            "grain {grain}: {rows} part rows, values {:.1} B/event, part keys {:.1} B/event, index {:.1} B/event, total {:.1} B/event",
            per_event(values),
            per_event(keys),
            per_event(index),
            per_event(values + keys + index),
        );
    }
    eprintln!(
        "{EVENTS} events: written in {written:?}, the hour and its day folded in {folded:?}, verified in {verified:?}"
    );
}

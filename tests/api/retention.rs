//! Retention on both stores (API.md, "Data lifecycle"): once a partner's `retentionDays`
//! is set, the sweeper deletes its events past it (whole hours on the embedded store,
//! whole UTC days on Cassandra) with everything counted from them: the listing, the
//! reports and `rollups verify` agree on what is left. A sweep cut short (the process
//! stopped after its first day) is finished by the next start's sweep.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use volcanion::config::Config;
use volcanion::model::Event;
use volcanion::rollups::Hour;
use volcanion::store::{EventFilter, EventQuery, EventScope, Store};

use crate::helpers::{Backend, TestAppBuilder, metric, stored_event, stored_partner, wait_until};

/// Days back of each event sent: four expire with a retention of 3 days (on Cassandra
/// too: their UTC days ended before the cutoff's), three stay.
const AGES_DAYS: [i64; 7] = [9, 8, 8, 5, 1, 1, 0];
const RETENTION_DAYS: i64 = 3;

fn sweeping_often(backend: Backend) -> TestAppBuilder {
    TestAppBuilder::new(backend)
        .configure(|config| config.store.retention_sweep = Duration::from_millis(200))
}

/// When each event happened: six hours into its UTC day (so no store's granularity puts
/// it on the other side of a cutoff), today's a minute ago.
fn sent_at(now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let today = now.date_naive().and_time(NaiveTime::MIN).and_utc();
    AGES_DAYS
        .iter()
        .enumerate()
        .map(|(n, days)| match days {
            0 => now - chrono::Duration::minutes(1),
            _ => {
                today - chrono::Duration::days(*days)
                    + chrono::Duration::hours(6)
                    + chrono::Duration::minutes(n as i64)
            }
        })
        .collect()
}

async fn expired_events_go_with_their_rollups(backend: Backend) {
    let (app, store) = sweeping_often(backend).spawn_keeping_store().await;
    let tenant = app.tenant("retention").await;
    let now = Utc::now();
    let times = sent_at(now);
    let events: Vec<Value> = times
        .iter()
        .enumerate()
        .map(|(n, at)| {
            json!({
                "eventType": "page_view",
                "userId": format!("u{n}"),
                "subsystem": tenant.subsystem_code,
                "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            })
        })
        .collect();
    let response = app.send_batch(&tenant.key, &events).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let from = now - chrono::Duration::days(10);
    let range = format!(
        "from={}&to={}",
        from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        (now + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let listing = format!("{range}&limit=100");
    app.await_events(&tenant.key, &listing, times.len()).await;

    let patched = app
        .patch_partner(
            &tenant.partner_id,
            &json!({"retentionDays": RETENTION_DAYS}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let kept = AGES_DAYS
        .iter()
        .filter(|days| **days < RETENTION_DAYS)
        .count();
    let expired = (times.len() - kept) as f64;
    // The counter moves once the partner's sweep is over (its days deleted and recounted).
    wait_until(
        "the sweep deletes the expired events",
        Duration::from_secs(60),
        || async {
            metric(&app.metrics().await, "volcanion_events_expired_total") == Some(expired)
        },
    )
    .await;
    assert_eq!(app.all_events(&tenant.key, &listing).await.len(), kept);
    let summary = app.summary(&tenant.key, &range).await;
    assert_eq!(summary["totalEvents"], json!(kept), "{summary}");
    assert_eq!(summary["uniqueUsers"], json!(kept), "{summary}");
    let partner: Uuid = tenant.partner_id.parse().unwrap();
    assert_verified(store.as_ref(), partner, (from, now)).await;
}

async fn assert_verified(
    store: &dyn Store,
    partner: Uuid,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) {
    let (from, to) = (Hour::of(from), Hour::ceil(to));
    let rollups = store.verify_rollups(partner, from, to).await.unwrap();
    assert!(rollups.is_empty(), "rollups differ: {rollups:?}");
    let cells = store.verify_breakdowns(partner, from, to).await.unwrap();
    assert!(cells.is_empty(), "breakdown cells differ: {cells:?}");
}

/// A sweep stopped after its first day (the oldest) leaves the store as it found the
/// rest; the next start's sweep finishes, and what is left agrees with its rollups.
async fn a_sweep_cut_short_is_finished_by_the_next_start(backend: Backend) {
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = Config::defaults();
    backend.apply(&mut config);
    config.store.data_dir = dir.path().to_path_buf();
    let now = Utc::now();
    let times = sent_at(now);
    let store = volcanion::open_store(&config).await.unwrap();
    let partner = stored_partner(store.as_ref(), "cut-sweep", &["click"]).await;
    let events: Vec<Event> = times
        .iter()
        .enumerate()
        .map(|(n, at)| stored_event(partner, &format!("e{n}"), "click", *at, &format!("u{n}")))
        .collect();
    store.write_events(&events).await.unwrap();
    let today = now.date_naive().and_time(NaiveTime::MIN).and_utc();
    let oldest_only = today - chrono::Duration::days(AGES_DAYS[0] - 1);
    let swept = store.sweep_expired(partner, oldest_only).await.unwrap();
    assert_eq!(swept.events, 1, "the oldest day, then the stop");
    drop(store);

    let mut with_retention = config.clone();
    with_retention.store.retention_sweep = Duration::from_millis(200);
    let store = volcanion::open_store(&with_retention).await.unwrap();
    let mut record = store.partner(partner).await.unwrap().unwrap();
    record.retention_days = Some(RETENTION_DAYS as u32);
    store.update_partner(&record).await.unwrap();
    drop(store);
    let data_dir = with_retention.store.data_dir.clone();
    let (app, store) = sweeping_often(backend)
        .configure(move |config| config.store.data_dir = data_dir)
        .spawn_keeping_store()
        .await;
    let kept = AGES_DAYS
        .iter()
        .filter(|age| **age < RETENTION_DAYS)
        .count();
    let range = (
        now - chrono::Duration::days(10),
        now + chrono::Duration::hours(1),
    );
    let expired = (times.len() - kept - 1) as f64;
    wait_until(
        "the next start's sweep finishes",
        Duration::from_secs(60),
        || async {
            metric(&app.metrics().await, "volcanion_events_expired_total") == Some(expired)
        },
    )
    .await;
    let left = store
        .query_events(&EventQuery {
            scope: EventScope::Partner(partner),
            from: range.0,
            to: range.1,
            filter: EventFilter::default(),
            limit: 100,
            cursor: None,
            with_payload: false,
        })
        .await
        .unwrap();
    let ages: BTreeSet<String> = left
        .items
        .iter()
        .map(|event| event.event_id.clone())
        .collect();
    let wanted: BTreeSet<String> = AGES_DAYS
        .iter()
        .enumerate()
        .filter(|(_, age)| **age < RETENTION_DAYS)
        .map(|(n, _)| format!("e{n}"))
        .collect();
    assert_eq!(ages, wanted);
    assert_verified(store.as_ref(), partner, range).await;
}

crate::backend_tests!(
    expired_events_go_with_their_rollups,
    a_sweep_cut_short_is_finished_by_the_next_start
);

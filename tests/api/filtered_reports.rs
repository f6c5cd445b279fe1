//! The summary and time series under `where=` over real HTTP, on both stores: once the
//! hours are folded, a filter with breakdown cells (here `deviceType`) is answered from
//! them — types, subsystems, validity, people — past `reports.max_raw_events`, which a
//! filter without cells (`browser`) runs into; before the fold the same answers come from
//! raw events; and a filter with cells gives what the raw path gives for the same events.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, FIREFOX, GOOGLEBOT, IPHONE, Report, SchemaScope, TestAppBuilder, assert_problem,
    error_fields,
};

const DAY: &str = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";
/// The same day spelled another way: its answers can't come from the cache of `DAY`'s.
const DAY_AGAIN: &str = "from=2026-11-20T00:00:00.000Z&to=2026-11-21T00:00:00Z";
/// Fewer than the mobile events: only cells can answer a filtered report once folded.
const MAX_RAW_EVENTS: u64 = 5;

fn event(kind: &str, user: &str, subsystem: &str, time: &str, agent: &str, plan: bool) -> Value {
    let properties = if plan {
        json!({"plan": "pro"})
    } else {
        json!({})
    };
    json!({
        "eventType": kind,
        "userId": user,
        "subsystem": subsystem,
        "timestamp": format!("2026-11-20T{time}:00Z"),
        "properties": properties,
        "context": {"userAgent": agent},
    })
}

/// `(summary, hourly series, daily series)` under `query`.
async fn reports(app: &crate::helpers::TestApp, key: &str, query: &str) -> (Value, Value, Value) {
    let summary = app.summary(key, query).await;
    let hourly = app.timeseries(key, &format!("{query}&interval=hour")).await;
    let daily = app.timeseries(key, &format!("{query}&interval=day")).await;
    (summary, hourly, daily)
}

fn check_mobile((summary, hourly, daily): &(Value, Value, Value), web: &str, ios: &str) {
    let counts = |summary: &Value| {
        (
            summary["totalEvents"].clone(),
            summary["validEvents"].clone(),
            summary["invalidEvents"].clone(),
            summary["uniqueUsers"].clone(),
        )
    };
    assert_eq!(counts(summary), (json!(8), json!(6), json!(2), json!(3)));
    assert_eq!(summary["eventCounts"], json!({"page_view": 5, "signup": 3}));
    let mut subsystems = serde_json::Map::new();
    subsystems.insert(web.to_string(), json!(6));
    subsystems.insert(ios.to_string(), json!(2));
    assert_eq!(summary["subsystemCounts"], Value::Object(subsystems));
    let bucket = |series: &Value, index: usize| {
        let bucket = &series["buckets"][index];
        (
            bucket["count"].clone(),
            bucket["uniqueUsers"].clone(),
            bucket["byType"].clone(),
        )
    };
    assert_eq!(
        bucket(hourly, 10),
        (json!(5), json!(2), json!({"page_view": 3, "signup": 2}))
    );
    assert_eq!(
        bucket(hourly, 11),
        (json!(3), json!(2), json!({"page_view": 2, "signup": 1}))
    );
    assert_eq!(hourly["buckets"][12]["count"], 0);
    assert_eq!(
        bucket(daily, 0),
        (json!(8), json!(3), json!({"page_view": 5, "signup": 3}))
    );
}

async fn filtered_reports_are_answered_from_cells_once_folded(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .configure(|config| config.reports.max_raw_events = MAX_RAW_EVENTS)
        .spawn()
        .await;
    let tenant = app.tenant("acme").await;
    let ios = app.create_subsystem(&tenant.partner_id, "acme-ios").await;
    let ios_id = ios["id"].as_str().unwrap().to_string();
    let structure = json!({
        "schema": {"type": "object", "required": ["plan"]},
        "mode": "flag"
    });
    let put = app
        .put_schema(
            SchemaScope::Partner(&tenant.partner_id),
            "signup",
            &structure,
        )
        .await;
    assert!(put.status().is_success());

    // Mobile: 8 events by 3 people over two hours, in two subsystems, 2 signups invalid.
    // Desktop: 4 events; a crawler: 1.
    let web = tenant.subsystem_code.as_str();
    let events = vec![
        event("page_view", "u1", web, "10:01", IPHONE, false),
        event("page_view", "u1", web, "10:02", IPHONE, false),
        event("page_view", "u2", "acme-ios", "10:03", IPHONE, false),
        event("signup", "u1", web, "10:04", IPHONE, true),
        event("signup", "u2", "acme-ios", "10:05", IPHONE, false),
        event("page_view", "u2", web, "11:01", IPHONE, false),
        event("page_view", "u3", web, "11:02", IPHONE, false),
        event("signup", "u3", web, "11:03", IPHONE, false),
        event("page_view", "u4", web, "10:06", FIREFOX, false),
        event("page_view", "u4", web, "10:07", FIREFOX, false),
        event("page_view", "u5", web, "11:04", FIREFOX, false),
        event("signup", "u5", web, "11:05", FIREFOX, true),
        event("page_view", "crawler", web, "11:06", GOOGLEBOT, false),
    ];
    let response = app.send_batch(&tenant.key, &events).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    app.await_events(&tenant.key, DAY, events.len()).await;

    // Before the fold: raw events (unsettled hours are not bounded by max_raw_events).
    let mobile = format!("{DAY}&where=deviceType:mobile");
    check_mobile(
        &reports(&app, &tenant.key, &mobile).await,
        &tenant.subsystem_id,
        &ios_id,
    );

    app.await_folded(2.0).await;

    // Folded: from cells, past max_raw_events.
    let mobile = format!("{DAY_AGAIN}&where=deviceType:mobile");
    check_mobile(
        &reports(&app, &tenant.key, &mobile).await,
        &tenant.subsystem_id,
        &ios_id,
    );
    // A filter without cells over as many events is refused, naming `where`.
    let safari = format!("{DAY_AGAIN}&where=browser:Mobile%20Safari");
    let refused = app.report(&tenant.key, Report::Summary, &safari).await;
    let problem = assert_problem(refused, StatusCode::BAD_REQUEST).await;
    assert_eq!(error_fields(&problem), ["where"]);

    // Bots: left out unless asked, under their own filter too.
    let bots = format!("{DAY_AGAIN}&where=deviceType:bot");
    assert_eq!(app.summary(&tenant.key, &bots).await["totalEvents"], 0);
    let with_bots = app
        .summary(&tenant.key, &format!("{bots}&includeBots=true"))
        .await;
    assert_eq!(
        (
            with_bots["totalEvents"].clone(),
            with_bots["uniqueUsers"].clone()
        ),
        (json!(1), json!(1))
    );
    // A filter by event type: its one type, the subsystems and validity of its events.
    let signups = app
        .summary(&tenant.key, &format!("{DAY_AGAIN}&where=eventType:signup"))
        .await;
    assert_eq!(signups["eventCounts"], json!({"signup": 4}));
    assert_eq!(
        (
            signups["validEvents"].clone(),
            signups["invalidEvents"].clone()
        ),
        (json!(2), json!(2))
    );
    // By subsystem (the scope's `subsystemId=`, a filter with cells).
    let ios_only = app
        .summary(
            &tenant.key,
            &format!("{DAY_AGAIN}&subsystemId={ios_id}&where=deviceType:mobile"),
        )
        .await;
    assert_eq!(
        ios_only["totalEvents"], 2,
        "two filters: read raw, 2 events"
    );
    let ios_cells = app
        .summary(
            &tenant.key,
            &format!("{DAY_AGAIN}&where=subsystem:{ios_id}"),
        )
        .await;
    assert_eq!(ios_cells["totalEvents"], 2);
    assert_eq!(ios_cells["subsystemCounts"][&ios_id], 2);
    assert_eq!(
        ios_cells["eventCounts"],
        json!({"page_view": 1, "signup": 1})
    );
    let nobody = app
        .summary(
            &tenant.key,
            &format!("{DAY_AGAIN}&where=subsystem:not-an-id"),
        )
        .await;
    assert_eq!(nobody["totalEvents"], 0);

    // Another partner's key sees none of it.
    let other = app.tenant("globex").await;
    let theirs = app.summary(&other.key, &mobile).await;
    assert_eq!(theirs["totalEvents"], 0);
}

crate::backend_tests!(filtered_reports_are_answered_from_cells_once_folded);

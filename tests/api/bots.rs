//! Every report leaves out the events classified as bots unless `includeBots=true`
//! (API.md, "Reading, second part"): counts, unique users and time series alike, on both
//! stores, read raw and (on Cassandra) from folded rollups.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, FIREFOX, GOOGLEBOT, Report, Tenant, TestApp, assert_problem, error_fields, event,
    spawn_app, wait_until,
};

fn visit(tenant: &Tenant, user: &str, agent: &str, minute: u32) -> Value {
    let mut visit = event(
        tenant,
        "page_view",
        user,
        &format!("2026-11-20T10:{minute:02}:00Z"),
    );
    visit["context"] = json!({ "userAgent": agent });
    visit
}

/// Three human page views by two people, two by one crawler.
async fn seed(app: &TestApp, tenant: &Tenant) {
    let events = vec![
        visit(tenant, "u1", FIREFOX, 1),
        visit(tenant, "u2", FIREFOX, 2),
        visit(tenant, "u1", FIREFOX, 3),
        visit(tenant, "crawler", GOOGLEBOT, 4),
        visit(tenant, "crawler", GOOGLEBOT, 5),
    ];
    let response = app.send_batch(&tenant.key, &events).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    app.await_events(
        &tenant.key,
        "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z",
        5,
    )
    .await;
}

/// (total, unique users) of the summary and of the 10:00 bucket, for `range`.
async fn counts(app: &TestApp, tenant: &Tenant, range: &str) -> [(Value, Value); 2] {
    let summary = app.summary(&tenant.key, range).await;
    let series = app
        .timeseries(&tenant.key, &format!("{range}&interval=hour"))
        .await;
    let bucket = &series["buckets"][10];
    [
        (
            summary["totalEvents"].clone(),
            summary["uniqueUsers"].clone(),
        ),
        (bucket["count"].clone(), bucket["uniqueUsers"].clone()),
    ]
}

async fn bots_are_left_out_of_reports_unless_asked(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    seed(&app, &tenant).await;
    let day = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";
    let humans = [(json!(3), json!(2)), (json!(3), json!(2))];
    let everyone = [(json!(5), json!(3)), (json!(5), json!(3))];
    assert_eq!(counts(&app, &tenant, day).await, humans);
    assert_eq!(
        counts(&app, &tenant, &format!("{day}&includeBots=false")).await,
        humans
    );
    assert_eq!(
        counts(&app, &tenant, &format!("{day}&includeBots=true")).await,
        everyone
    );

    if matches!(backend, Backend::Cassandra { .. }) {
        // The same from folded rollups (another spelling of the range: not from cache).
        wait_until("the hour is folded", Duration::from_secs(30), || async {
            let text = app.metrics().await;
            text.lines()
                .any(|line| line == "volcanion_rollup_hours_waiting 0")
                && !text
                    .lines()
                    .any(|line| line == "volcanion_rollup_hours_folded_total 0")
        })
        .await;
        let day = "from=2026-11-20T00:00:00.000Z&to=2026-11-21T00:00:00Z";
        assert_eq!(counts(&app, &tenant, day).await, humans);
        assert_eq!(
            counts(&app, &tenant, &format!("{day}&includeBots=true")).await,
            everyone
        );
    }

    let response = app
        .report(
            &tenant.key,
            Report::Summary,
            &format!("{day}&includeBots=yes"),
        )
        .await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(error_fields(&problem), ["includeBots"]);
}

crate::backend_tests!(bots_are_left_out_of_reports_unless_asked);

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, Report, Tenant, TestApp, assert_problem, event, spawn_app};

const DAY: &str = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";

async fn seed(app: &TestApp, tenant: &Tenant) {
    let backend = app.create_subsystem(&tenant.partner_id, "backend").await;
    let mut server_side = event(tenant, "invoice", "u3", "2026-11-20T23:30:00Z");
    server_side["subsystem"] = backend["code"].clone();
    let events = vec![
        event(tenant, "page_view", "u1", "2026-11-20T10:05:00Z"),
        event(tenant, "page_view", "u2", "2026-11-20T10:55:00Z"),
        event(tenant, "purchase", "u1", "2026-11-20T12:00:00Z"),
        json!({"eventType": "page_view", "anonymousId": "anon-9", "subsystem": tenant.subsystem_code, "timestamp": "2026-11-20T12:30:00Z"}),
        server_side,
        event(tenant, "outside", "u1", "2026-11-21T00:00:00Z"),
    ];
    assert_eq!(
        app.send_batch(&tenant.key, &events).await.status(),
        StatusCode::ACCEPTED
    );
    app.await_events(
        &tenant.key,
        "from=2026-11-20T00:00:00Z&to=2026-11-22T00:00:00Z",
        6,
    )
    .await;
}

async fn summary_counts_events_users_types_and_subsystems(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    seed(&app, &tenant).await;
    let response = app.report(&tenant.key, Report::Summary, DAY).await;
    assert_eq!(response.status(), StatusCode::OK);
    let summary: Value = response.json().await.unwrap();
    assert_eq!(summary["partnerId"], tenant.partner_id.as_str());
    assert_eq!(summary["totalEvents"], 5);
    assert_eq!(summary["validEvents"], 5);
    assert_eq!(summary["invalidEvents"], 0);
    assert_eq!(summary["uniqueUsers"], 4, "u1, u2, u3 and anon-9");
    assert_eq!(
        summary["eventCounts"],
        json!({"page_view": 3, "purchase": 1, "invoice": 1})
    );
    assert_eq!(summary["subsystemCounts"][&tenant.subsystem_id], 4);

    let narrowed = app
        .summary(
            &tenant.key,
            &format!("{DAY}&subsystemId={}", tenant.subsystem_id),
        )
        .await;
    assert_eq!(narrowed["totalEvents"], 4);
    assert_eq!(narrowed["subsystemId"], tenant.subsystem_id.as_str());
}

async fn hourly_timeseries_includes_empty_buckets(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    seed(&app, &tenant).await;
    let series = app
        .timeseries(&tenant.key, &format!("{DAY}&interval=hour"))
        .await;
    assert_eq!(series["interval"], "hour");
    assert_eq!(series["tz"], "UTC");
    let buckets = series["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 24);
    assert_eq!(buckets[10]["start"], "2026-11-20T10:00:00Z");
    assert_eq!(buckets[10]["count"], 2);
    assert_eq!(buckets[10]["uniqueUsers"], 2);
    assert_eq!(buckets[11]["count"], 0);
    assert_eq!(
        buckets[12]["byType"],
        json!({"page_view": 1, "purchase": 1})
    );

    let purchases = app
        .timeseries(
            &tenant.key,
            &format!("{DAY}&interval=hour&eventType=purchase"),
        )
        .await;
    let total: u64 = purchases["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 1);
}

async fn daily_timeseries_follows_the_requested_time_zone(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    seed(&app, &tenant).await;
    let series = app
        .timeseries(
            &tenant.key,
            "from=2026-11-20T00:00:00Z&to=2026-11-22T00:00:00Z&interval=day&tz=Europe/Berlin",
        )
        .await;
    let buckets = series["buckets"].as_array().unwrap();
    let starts: Vec<&str> = buckets
        .iter()
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-11-19T23:00:00Z",
            "2026-11-20T23:00:00Z",
            "2026-11-21T23:00:00Z"
        ]
    );
    let counts: Vec<u64> = buckets
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .collect();
    assert_eq!(
        counts,
        [4, 2, 0],
        "23:30 UTC and midnight UTC are the 21st in Berlin"
    );
    let local_starts: Vec<&str> = buckets
        .iter()
        .map(|b| b["localStart"].as_str().unwrap())
        .collect();
    assert_eq!(
        local_starts,
        [
            "2026-11-20T00:00:00+01:00",
            "2026-11-21T00:00:00+01:00",
            "2026-11-22T00:00:00+01:00"
        ]
    );
}

async fn bad_report_parameters_are_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    for (report, query, field) in [
        (
            Report::Timeseries,
            format!("{DAY}&interval=week"),
            "interval",
        ),
        (Report::Timeseries, format!("{DAY}&tz=Mars/Olympus"), "tz"),
        (
            Report::Timeseries,
            "from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&interval=hour".to_string(),
            "from",
        ),
        (
            Report::Summary,
            "from=2026-11-21T00:00:00Z&to=2026-11-20T00:00:00Z".to_string(),
            "from",
        ),
    ] {
        let response = app.report(&tenant.key, report, &query).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(problem["errors"][0]["field"], field, "{report:?} {query}");
    }
}

crate::backend_tests!(
    summary_counts_events_users_types_and_subsystems,
    hourly_timeseries_includes_empty_buckets,
    daily_timeseries_follows_the_requested_time_zone,
    bad_report_parameters_are_400,
);

use reqwest::StatusCode;
use serde_json::{Value, json};

use std::time::Duration;

use crate::helpers::{
    Backend, KeyspaceCleanup, Report, Tenant, TestApp, assert_problem, event, spawn_app, wait_until,
};

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

/// Counts are of stored events, once each: a retried batch, a repeated `eventId` and late
/// events for an old hour change them only by the events newly stored, and they equal a
/// recount of the raw events, in whole hours (rollups) and cut ones (raw) alike.
async fn reports_equal_a_recount_through_retries_duplicates_and_late_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let batch: Vec<Value> = (0..40)
        .map(|i| {
            let mut event = event(
                &tenant,
                ["view", "buy"][i % 2],
                &format!("u{}", i % 7),
                &format!("2026-11-20T{:02}:{:02}:00Z", 8 + i / 10, (i * 7) % 60),
            );
            event["eventId"] = json!(format!("e{i}"));
            event
        })
        .collect();
    for _ in 0..2 {
        assert_eq!(
            app.send_batch(&tenant.key, &batch).await.status(),
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(
        app.send_event(&tenant.key, &batch[3]).await.status(),
        StatusCode::ACCEPTED
    );
    // Late: an hour long closed, arriving after the others.
    let mut late = event(&tenant, "view", "late-user", "2026-11-20T03:15:00Z");
    late["eventId"] = json!("late-1");
    assert_eq!(
        app.send_event(&tenant.key, &late).await.status(),
        StatusCode::ACCEPTED
    );
    let stored = app
        .all_events(&tenant.key, &format!("{DAY}&limit=1000"))
        .await;
    assert_eq!(stored.len(), 41, "40 distinct ids plus the late event");

    let summary = app.summary(&tenant.key, DAY).await;
    assert_eq!(summary["totalEvents"], 41);
    assert_eq!(summary["eventCounts"], json!({"view": 21, "buy": 20}));
    assert_eq!(summary["uniqueUsers"], 8, "u0..u6 and late-user");
    // A range whose ends cut hours: 08:30..10:30 reads two partial hours raw.
    let cut = "from=2026-11-20T08:30:00Z&to=2026-11-20T10:30:00Z";
    let expected = stored
        .iter()
        .filter(|event| {
            let at = event["timestamp"].as_str().unwrap();
            ("2026-11-20T08:30:00"..="2026-11-20T10:29:59.999").contains(&at)
        })
        .count();
    assert_eq!(app.summary(&tenant.key, cut).await["totalEvents"], expected);
    let hourly = app
        .timeseries(&tenant.key, &format!("{DAY}&interval=hour"))
        .await;
    let counts: Vec<u64> = hourly["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bucket| bucket["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 41);
    assert_eq!(counts[3], 1, "the late event is in its own hour");
    assert_eq!(&counts[8..12], [10, 10, 10, 10]);
}

/// Asia/Kolkata (UTC+5:30) days start at 18:30 UTC: the hour a day starts in is split
/// between two buckets, and each event lands in the right one.
async fn half_hour_time_zones_split_the_hour_a_day_starts_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let events = vec![
        event(&tenant, "view", "u1", "2026-11-20T18:10:00Z"),
        event(&tenant, "view", "u2", "2026-11-20T18:29:59Z"),
        event(&tenant, "view", "u3", "2026-11-20T18:30:00Z"),
        event(&tenant, "view", "u4", "2026-11-20T18:50:00Z"),
        event(&tenant, "view", "u5", "2026-11-21T02:00:00Z"),
    ];
    assert_eq!(
        app.send_batch(&tenant.key, &events).await.status(),
        StatusCode::ACCEPTED
    );
    let series = app
        .timeseries(
            &tenant.key,
            "from=2026-11-19T18:30:00Z&to=2026-11-21T18:30:00Z&interval=day&tz=Asia/Kolkata",
        )
        .await;
    let buckets = series["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2);
    assert_eq!(buckets[0]["localStart"], "2026-11-20T00:00:00+05:30");
    assert_eq!(buckets[0]["count"], 2);
    assert_eq!(buckets[1]["count"], 3);
    assert_eq!(buckets[1]["uniqueUsers"], 3);
}

/// `dataAsOf`: every event acknowledged before it is counted, and it is not in the future.
async fn reports_say_up_to_when_they_are_complete(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    assert_eq!(
        app.send_event(
            &tenant.key,
            &event(&tenant, "view", "u1", "2026-11-20T10:00:00Z")
        )
        .await
        .status(),
        StatusCode::ACCEPTED
    );
    let acknowledged = chrono::Utc::now();
    let summary = app.summary(&tenant.key, DAY).await;
    let series = app.timeseries(&tenant.key, DAY).await;
    let answered = chrono::Utc::now();
    assert_eq!(summary["totalEvents"], 1, "acknowledged, so counted");
    for report in [&summary, &series] {
        let as_of: chrono::DateTime<chrono::Utc> =
            report["dataAsOf"].as_str().unwrap().parse().unwrap();
        assert!(
            acknowledged <= as_of && as_of <= answered,
            "dataAsOf {as_of} is not between the 202 ({acknowledged}) and the answer ({answered})"
        );
    }
}

/// A settled range (it ended before the current hour) is cached long, yet an event that
/// lands in it later shows in the very next report.
async fn a_late_event_refreshes_a_settled_report_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let send = |at: &'static str| {
        let event = event(&tenant, "view", "u1", at);
        let app = &app;
        let key = tenant.key.clone();
        async move { app.send_event(&key, &event).await.status() }
    };
    assert_eq!(send("2026-11-20T10:00:00Z").await, StatusCode::ACCEPTED);
    assert_eq!(app.summary(&tenant.key, DAY).await["totalEvents"], 1);
    let hits = |metrics: String| {
        metrics
            .lines()
            .find(|line| line.starts_with("volcanion_cache_hits_total{cache=\"report\"}"))
            .and_then(|line| line.split_whitespace().last()?.parse::<u64>().ok())
            .unwrap()
    };
    let before = hits(app.metrics().await);
    assert_eq!(app.summary(&tenant.key, DAY).await["totalEvents"], 1);
    assert_eq!(
        hits(app.metrics().await),
        before + 1,
        "served from the cache"
    );
    assert_eq!(send("2026-11-20T11:00:00Z").await, StatusCode::ACCEPTED);
    assert_eq!(
        app.summary(&tenant.key, DAY).await["totalEvents"],
        2,
        "the late event invalidated the cached report"
    );
}

crate::backend_tests!(
    a_late_event_refreshes_a_settled_report_at_once,
    reports_equal_a_recount_through_retries_duplicates_and_late_events,
    half_hour_time_zones_split_the_hour_a_day_starts_in,
    reports_say_up_to_when_they_are_complete,
    summary_counts_events_users_types_and_subsystems,
    hourly_timeseries_includes_empty_buckets,
    daily_timeseries_follows_the_requested_time_zone,
    bad_report_parameters_are_400,
);

/// A metric's value in `/metrics` text (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .and_then(|line| line.split_whitespace().last()?.parse().ok())
        .unwrap_or(0.0)
}

/// Cassandra folds an hour into rollups once no write has touched it for
/// `rollup_settle` (300 ms in tests). Reports read as the events land (raw, or partly
/// folded) and once every hour is folded agree,
/// for the partner and for a subsystem, in every hourly bucket.
#[tokio::test]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn cassandra_reports_from_folded_rollups_equal_the_raw_ones() {
    let backend =
        Backend::cassandra_from_env("cassandra_reports_from_folded_rollups_equal_the_raw_ones");
    let _cleanup = KeyspaceCleanup::new(backend);
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    seed(&app, &tenant).await;
    // The same day, given two ways, so the second answer cannot come from the cache.
    let (before, after) = (DAY, "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00.000Z");
    let subsystem = format!("subsystemId={}", tenant.subsystem_id);
    let reports = |range: &'static str| {
        let (app, tenant, subsystem) = (&app, &tenant, subsystem.clone());
        async move {
            let mut summary = app.summary(&tenant.key, range).await;
            let mut narrowed = app
                .summary(&tenant.key, &format!("{range}&{subsystem}"))
                .await;
            let mut hourly = app
                .timeseries(&tenant.key, &format!("{range}&interval=hour"))
                .await;
            for report in [&mut summary, &mut narrowed, &mut hourly] {
                report.as_object_mut().unwrap().remove("dataAsOf");
                report.as_object_mut().unwrap().remove("to");
            }
            (summary, narrowed, hourly)
        }
    };
    let raw = reports(before).await;
    wait_until(
        "the seeded hours are folded",
        Duration::from_secs(30),
        || async {
            let text = app.metrics().await;
            metric(&text, "volcanion_rollup_hours_folded_total") >= 4.0
                && metric(&text, "volcanion_rollup_hours_waiting") == 0.0
        },
    )
    .await;
    let folded = reports(after).await;
    assert_eq!(folded, raw);
    assert_eq!(folded.0["totalEvents"], 5);
    assert_eq!(
        folded.1["totalEvents"], 4,
        "the backend subsystem's invoice is left out"
    );
}

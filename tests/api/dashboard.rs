//! The built-in dashboard (`GET /dashboard`): its files come from the binary with strict
//! headers, and in headless Chromium (playwright-core, `tests/browser/dashboard.cjs`)
//! against the real `volcanion` binary with seeded data it signs in, shows the API's own
//! numbers and latest events, draws a chart that is not blank, refetches when the range
//! changes, explains a wrong key, fits a phone-width screen and gives the admin token a
//! partner picker; its breakdown panels, value filters and bot share are checked in
//! `dashboard_panels.rs`.
//!
//! The browser test needs playwright-core and Chromium, which `scripts/segment-sdks.sh
//! install DIR` installs (what `.ci/run` does); it runs with `--include-ignored` and
//! `VOLCANION_TEST_SEGMENT_SDKS=DIR`, and fails without it. Screenshots go to
//! `VOLCANION_TEST_ARTIFACTS` (default: `dashboard/` under Cargo's test temp dir).

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::dashboard_panels::{Expected, assert_filters, assert_panel_error, assert_panels};
use crate::helpers::{
    ADMIN_TOKEN, Backend, FIREFOX, GOOGLEBOT, IPHONE, SchemaScope, TestApp, id_of,
    installed_libraries, run_script, spawn_app,
};
use crate::process::{start, terminate};

const ARTIFACTS_ENV: &str = "VOLCANION_TEST_ARTIFACTS";
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test]
async fn the_page_and_its_files_are_served_with_strict_headers() {
    let app = spawn_app(Backend::Embedded).await;
    let page = app.client.get(app.url("/dashboard")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'self'") && policy.contains("script-src 'self'"));
    assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"));
    assert!(
        policy.contains("form-action 'none'"),
        "a typed key never lands in a URL"
    );
    assert!(headers.contains_key("cache-control") && headers.contains_key("etag"));
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "nothing from another host: it works offline"
    );
    for (path, content_type) in [
        ("/dashboard/dashboard.js", "text/javascript; charset=utf-8"),
        ("/dashboard/dashboard.css", "text/css; charset=utf-8"),
        (
            "/dashboard/vendor/uPlot.iife.min.js",
            "text/javascript; charset=utf-8",
        ),
        ("/dashboard/vendor/LICENSE", "text/plain; charset=utf-8"),
    ] {
        let file = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(file.status(), StatusCode::OK, "{path}");
        assert_eq!(file.headers()["content-type"], content_type, "{path}");
        assert_eq!(file.headers()["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn an_unchanged_file_is_not_sent_again_and_an_unknown_one_is_404() {
    let app = spawn_app(Backend::Embedded).await;
    let first = app.get("/dashboard/dashboard.js").await;
    let etag = first.headers()["etag"].clone();
    let again = app
        .client
        .get(app.url("/dashboard/dashboard.js"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let missing = app.get("/dashboard/../Cargo.toml").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let missing = app.get("/dashboard/secrets.js").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
#[ignore = "needs playwright-core and Chromium: VOLCANION_TEST_SEGMENT_SDKS and --include-ignored"]
async fn in_chromium_the_dashboard_shows_the_apis_numbers_and_explains_a_wrong_key() {
    let libs = browser_libs();
    let data_dir = tempfile::TempDir::new().unwrap();
    let service = start(data_dir.path(), Backend::Embedded, &[]).await;
    let seeded = seed(&service.app).await;
    let artifacts = artifacts_dir();

    let seen = run_browser(&libs, &service.app, &seeded, &artifacts).await;

    let wrong = &seen["wrongKey"];
    assert!(
        wrong["message"]
            .as_str()
            .unwrap()
            .contains("not valid or has expired"),
        "a wrong key is explained: {wrong}"
    );
    assert_eq!(wrong["signInShown"], true);
    let ingest_only = &wrong["ingestOnly"];
    assert!(
        ingest_only["message"]
            .as_str()
            .unwrap()
            .contains("'read' scope"),
        "a key without the read scope is explained: {ingest_only}"
    );
    assert_eq!(ingest_only["signInShown"], true);
    let read = &seen["read"];
    assert_board_matches_api(&service.app, &seeded, &read["board"]).await;
    assert_people_match_api(&service.app, &seeded, &read["people"]).await;
    let expected = Expected {
        events: &seeded.events,
        bots: seeded.bots.len(),
    };
    assert_panels(&service.app, &seeded.read_key, &read["board"], &expected).await;
    assert_screenshot_not_blank(&artifacts.join("panels.png"));
    assert_filters(&service.app, &seeded.read_key, &read["filters"], &expected).await;
    assert_panel_error(&read["panelError"]);
    assert!(
        read["chartColours"].as_u64().unwrap() > 20,
        "the chart is drawn: {}",
        read["chartColours"]
    );
    assert_screenshot_not_blank(&artifacts.join("chart.png"));
    assert_eq!(read["keptInSessionStorage"], true);
    assert_eq!(read["cookies"], 0, "the key is never a cookie");
    assert_range_change_refetched(&read["range"]);
    let empty = &read["empty"];
    assert_eq!(empty["shown"], true, "an empty range is said so: {empty}");
    assert!(
        empty["text"]
            .as_str()
            .unwrap()
            .contains("No events in this range yet")
    );
    assert_eq!(empty["totalEvents"], 0);
    let limited = read["rateLimited"]["message"].as_str().unwrap();
    assert!(
        limited.contains("Rate limited, retrying in 7 s"),
        "{limited}"
    );
    let phone = &seen["phone"];
    assert!(
        phone["scrollWidth"].as_u64() <= phone["innerWidth"].as_u64(),
        "nothing wider than a 375 px screen: {phone}"
    );
    assert_eq!(phone["hashLeft"], "", "the key leaves the address bar");
    assert_eq!(phone["totalEvents"], seeded.events.len());
    let admin = &seen["admin"];
    assert_eq!(admin["pickerShown"], true);
    assert_eq!(admin["partners"], json!([seeded.partner_id]));
    assert_eq!(admin["totalEvents"], seeded.events.len());
    assert_eq!(seen["problems"], json!([]), "no script or CSP errors");
    terminate(service).await;
}

/// What the test put in: a partner with two subsystems, an ingest-only and a read-only key,
/// events of which some break the partner's `purchase` structure, and a crawler's.
struct Seeded {
    partner_id: String,
    read_key: String,
    ingest_key: String,
    /// People's events, which reports count by default.
    events: Vec<Value>,
    bots: Vec<Value>,
}

async fn seed(app: &TestApp) -> Seeded {
    let partner_id = id_of(&app.create_partner("dash").await);
    app.create_subsystem(&partner_id, "dash-web").await;
    app.create_subsystem(&partner_id, "dash-ios").await;
    let structure = json!({
        "schema": {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}},
        "mode": "flag"
    });
    let response = app
        .put_schema(SchemaScope::Partner(&partner_id), "purchase", &structure)
        .await;
    assert!(response.status().is_success());
    let ingest_key = key_with_scope(app, &partner_id, "ingest").await;
    let read_key = key_with_scope(app, &partner_id, "read").await;
    let now = Utc::now();
    let (events, bots) = (events(now), crawler(now));
    let all: Vec<Value> = events.iter().chain(&bots).cloned().collect();
    let accepted = app.send_batch(&ingest_key, &all).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    app.await_events(&read_key, "limit=1000", all.len()).await;
    Seeded {
        partner_id,
        read_key,
        ingest_key,
        events,
        bots,
    }
}

/// A new key of the partner with `scope` alone, in clear.
async fn key_with_scope(app: &TestApp, partner_id: &str, scope: &str) -> String {
    let key = app.create_key(partner_id, json!({"scopes": [scope]})).await;
    key["key"].as_str().unwrap().to_string()
}

/// 30 events over the last 20 hours from 7 users on two subsystems; every fifth is a
/// purchase without its `amount`, so it is stored invalid with its validation errors.
/// Half on desktop Firefox, half on an iPhone, over three pages (15, 10 and 5 events),
/// from two referrers or none; the first ten from a campaign.
fn events(now: DateTime<Utc>) -> Vec<Value> {
    (0..30)
        .map(|index: i64| {
            let (event_type, properties) = match index % 5 {
                0 => ("purchase", json!({"currency": "EUR"})),
                1 => ("purchase", json!({"amount": 12.5})),
                2 | 3 => ("page_view", json!({"page": "/home"})),
                _ => ("signup", json!({"plan": "pro"})),
            };
            json!({
                "eventType": event_type,
                "userId": format!("user-{}", index % 7),
                "subsystem": if index % 3 == 0 { "dash-ios" } else { "dash-web" },
                "timestamp": now - chrono::Duration::minutes(40 * index + 5),
                "properties": properties,
                "context": context(index),
            })
        })
        .collect()
}

fn context(index: i64) -> Value {
    let page = [
        "/pricing", "/pricing", "/pricing", "/docs", "/docs", "/blog",
    ][index as usize % 6];
    let referrer = match index % 4 {
        0 | 2 => "https://www.google.com/search?q=volcanion",
        1 => "https://news.ycombinator.com/item?id=1",
        _ => "",
    };
    let mut context = json!({
        "page": {"path": page, "referrer": referrer, "url": format!("https://shop.example{page}")},
        "userAgent": if index % 2 == 0 { FIREFOX } else { IPHONE },
    });
    if index < 10 {
        context["campaign"] =
            json!({"name": "winter-sale", "source": "newsletter", "medium": "email"});
    }
    context
}

/// Three page views by Googlebot: counted as bots, left out of reports by default.
fn crawler(now: DateTime<Utc>) -> Vec<Value> {
    (0..3)
        .map(|index: i64| {
            json!({
                "eventType": "page_view",
                "userId": "crawler",
                "subsystem": "dash-web",
                "timestamp": now - chrono::Duration::minutes(50 * index + 7),
                "context": {"page": {"path": "/pricing"}, "userAgent": GOOGLEBOT},
            })
        })
        .collect()
}

/// The page's funnel and retention grid are the API's for the range and zone it asked.
async fn assert_people_match_api(app: &TestApp, seeded: &Seeded, seen: &Value) {
    let range = |view: &Value| {
        format!(
            "from={}&to={}",
            encode(view["from"].as_str().unwrap()),
            encode(view["to"].as_str().unwrap())
        )
    };
    let funnel = app
        .funnel(
            &seeded.read_key,
            &format!(
                "{}&steps=page_view,signup,purchase&window=1d",
                range(&seen["funnel"])
            ),
        )
        .await;
    let rows = seen["funnel"]["rows"].as_array().unwrap();
    let steps = funnel["steps"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{seen}");
    for (index, (row, step)) in rows.iter().zip(steps).enumerate() {
        let event_type = step["eventType"].as_str().unwrap();
        assert_eq!(row[0], format!("{}. {event_type}", index + 1));
        assert_eq!(row[1], step["users"].to_string(), "{row} vs {step}");
    }
    assert!(
        steps[0]["users"].as_u64().unwrap() > 0,
        "people to count: {funnel}"
    );
    let retention = app
        .retention(
            &seeded.read_key,
            &format!(
                "{}&startEvent=page_view&returnEvent=purchase&interval=day&periods=4&tz={}",
                range(&seen["retention"]),
                encode(seen["tz"].as_str().unwrap())
            ),
        )
        .await;
    let cohorts = retention["cohorts"].as_array().unwrap();
    let rows = seen["retention"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), cohorts.len(), "{seen} vs {retention}");
    for (index, cohort) in cohorts.iter().enumerate() {
        assert_eq!(rows[index][1], cohort["users"].to_string());
        assert_eq!(seen["retention"]["returned"][index], cohort["returned"]);
    }
    let people: u64 = cohorts.iter().map(|c| c["users"].as_u64().unwrap()).sum();
    assert!(people > 0, "cohorts to show: {retention}");
}

/// The page's totals, top lists and latest events are the API's for the range it showed.
async fn assert_board_matches_api(app: &TestApp, seeded: &Seeded, board: &Value) {
    let range = format!(
        "from={}&to={}",
        encode(board["from"].as_str().unwrap()),
        encode(board["to"].as_str().unwrap())
    );
    let summary = app.summary(&seeded.read_key, &range).await;
    for field in [
        "totalEvents",
        "validEvents",
        "invalidEvents",
        "uniqueUsers",
        "visits",
    ] {
        assert_eq!(
            board[field], summary[field],
            "{field}: {board} vs {summary}"
        );
    }
    let bounce = summary["bounceRate"]
        .as_f64()
        .expect("visits, so a bounce rate");
    let shown: f64 = board["bounceRate"]
        .as_str()
        .unwrap()
        .trim_end_matches(" %")
        .parse()
        .unwrap();
    assert!(
        (shown - 100.0 * bounce).abs() <= 0.05,
        "{shown} % vs {bounce}"
    );
    assert!(summary["visitDurationSeconds"].is_number());
    assert_ne!(board["visitDuration"], "–", "{board}");
    assert_eq!(summary["totalEvents"], seeded.events.len());
    assert_eq!(summary["invalidEvents"], 6);
    let mut expected_types: Vec<(String, u64)> = summary["eventCounts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, count)| (name.clone(), count.as_u64().unwrap()))
        .collect();
    expected_types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    assert_eq!(board["topTypes"], json!(expected_types));
    let mut subsystem_counts: Vec<u64> = summary["subsystemCounts"]
        .as_object()
        .unwrap()
        .values()
        .map(|count| count.as_u64().unwrap())
        .collect();
    subsystem_counts.sort_by(|a, b| b.cmp(a));
    assert_eq!(board["topSubsystems"], json!(subsystem_counts));
    let series = app
        .timeseries(
            &seeded.read_key,
            &format!(
                "{range}&interval={}&tz={}",
                board["interval"].as_str().unwrap(),
                encode(board["tz"].as_str().unwrap())
            ),
        )
        .await;
    let buckets = series["buckets"].as_array().unwrap();
    let charted: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(
        board["chartSummary"],
        format!(
            "{charted} events in {} {} buckets.",
            buckets.len(),
            board["interval"].as_str().unwrap()
        ),
        "the chart plots the API's series"
    );
    assert!(board["status"].as_str().unwrap().contains("Data as of"));
    assert_eq!(board["emptyShown"], false);
    assert_latest_match(app, seeded, board, &range).await;
}

async fn assert_latest_match(app: &TestApp, seeded: &Seeded, board: &Value, range: &str) {
    let response = app
        .get_events(&seeded.read_key, &format!("{range}&limit=20"))
        .await;
    let page: Value = response.json().await.unwrap();
    let items = page["items"].as_array().unwrap();
    let ids: Vec<&Value> = items.iter().map(|event| &event["eventId"]).collect();
    assert_eq!(
        board["latestIds"],
        json!(ids),
        "the latest events, newest first"
    );
    for (row, event) in board["latest"].as_array().unwrap().iter().zip(items) {
        assert_eq!(row["eventType"], event["eventType"]);
        assert_eq!(row["user"], event["userId"]);
        assert_eq!(
            row["valid"],
            if event["isValid"] == true {
                "Yes"
            } else {
                "No"
            }
        );
        assert_eq!(row["errors"], event["validationErrors"], "{row}");
    }
    let invalid_rows = board["latest"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["valid"] == "No" && !row["errors"].as_array().unwrap().is_empty())
        .count();
    assert!(
        invalid_rows > 0,
        "invalid events show their validation errors"
    );
}

/// Choosing "last 7 days" asked the API again, for a 7-day range.
fn assert_range_change_refetched(range: &Value) {
    assert!(range["summaryRequests"].as_u64().unwrap() >= 1, "{range}");
    let request = &range["request"];
    let from: DateTime<Utc> = request["from"].as_str().unwrap().parse().unwrap();
    let to: DateTime<Utc> = request["to"].as_str().unwrap().parse().unwrap();
    assert_eq!((to - from).num_hours(), 7 * 24, "{range}");
    assert_eq!(
        range["from"], request["from"],
        "the page shows what it asked"
    );
}

/// A PNG of a drawn chart is far larger than one of a single colour.
fn assert_screenshot_not_blank(path: &Path) {
    let bytes = std::fs::read(path).expect("the chart screenshot was saved");
    assert!(bytes.starts_with(b"\x89PNG"), "{} is a PNG", path.display());
    assert!(
        bytes.len() > 8 * 1024,
        "{} has content: {} bytes",
        path.display(),
        bytes.len()
    );
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn run_browser(libs: &Path, app: &TestApp, seeded: &Seeded, artifacts: &Path) -> Value {
    let mut command = Command::new("node");
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.cjs"))
        .arg(format!("http://{}", app.address))
        .arg(&seeded.read_key)
        .arg(&seeded.ingest_key)
        .arg(ADMIN_TOKEN)
        .arg(artifacts)
        .env("BROWSER_LIBS", libs);
    run_script(&mut command, SCRIPT_TIMEOUT).await
}

/// The installed playwright-core; panics when asked to run without it.
fn browser_libs() -> PathBuf {
    installed_libraries(
        "the dashboard's browser test",
        &["node_modules/playwright-core"],
    )
}

fn artifacts_dir() -> PathBuf {
    let dir = std::env::var(ARTIFACTS_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard"));
    std::fs::create_dir_all(&dir).expect("the artifacts dir can be made");
    dir
}

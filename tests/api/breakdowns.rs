//! `GET /api/v1/reports/breakdown` and `where=` over real HTTP, on both stores: the values
//! of each kind of dimension, limits and "other", bots left out and counted, filters with
//! rollup cells and without (raw), the same answers once the hours are folded, and bad
//! parameters named.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, FIREFOX, GOOGLEBOT, IPHONE, Report, Tenant, TestApp, assert_problem, error_fields,
    spawn_app,
};

const DAY: &str = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";
/// The same day spelled another way: its answers can't come from the cache of `DAY`'s.
const DAY_AGAIN: &str = "from=2026-11-20T00:00:00.000Z&to=2026-11-21T00:00:00Z";

fn event(tenant: &Tenant, kind: &str, user: &str, time: &str, context: Value) -> Value {
    json!({
        "eventType": kind,
        "userId": user,
        "subsystem": tenant.subsystem_code,
        "timestamp": format!("2026-11-20T{time}:00Z"),
        "properties": {"plan": "pro"},
        "context": context,
    })
}

fn view(tenant: &Tenant, user: &str, time: &str, page: &str, referrer: &str, agent: &str) -> Value {
    let context = json!({
        "page": {"path": page, "referrer": referrer},
        "userAgent": agent,
    });
    event(tenant, "page_view", user, time, context)
}

/// Five human page views by four people over two hours, a crawler's view, and a
/// purchase without a page.
async fn seed(app: &TestApp, tenant: &Tenant) {
    let google = "https://www.google.com/search";
    let hn = "https://news.ycombinator.com/item?id=1";
    let events = vec![
        view(tenant, "u1", "10:01", "/pricing", google, FIREFOX),
        view(tenant, "u2", "10:02", "/pricing", google, IPHONE),
        view(tenant, "u1", "10:03", "/docs", "", FIREFOX),
        view(tenant, "u3", "11:04", "/pricing", hn, FIREFOX),
        view(tenant, "u4", "11:05", "/blog", "", IPHONE),
        view(tenant, "crawler", "11:06", "/pricing", "", GOOGLEBOT),
        event(
            tenant,
            "purchase",
            "u1",
            "11:07",
            json!({"userAgent": FIREFOX}),
        ),
    ];
    let response = app.send_batch(&tenant.key, &events).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    app.await_events(&tenant.key, DAY, 7).await;
}

/// (value, events, unique users) of each item.
fn items(breakdown: &Value) -> Vec<(String, u64, u64)> {
    breakdown["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let value = item["value"].as_str().expect("a value").to_string();
            let events = item["events"].as_u64().expect("events");
            (value, events, item["uniqueUsers"].as_u64().expect("users"))
        })
        .collect()
}

fn owned(items: &[(&str, u64, u64)]) -> Vec<(String, u64, u64)> {
    items
        .iter()
        .map(|(value, events, users)| (value.to_string(), *events, *users))
        .collect()
}

/// Every answer the test checks, for one spelling of the day.
async fn check_answers(app: &TestApp, tenant: &Tenant, day: &str) {
    let get = |query: String| async move { app.breakdown(&tenant.key, &query).await };
    let pages = get(format!("{day}&dimension=page")).await;
    assert_eq!(pages["dimension"], "page");
    assert_eq!(
        items(&pages),
        owned(&[("/pricing", 3, 3), ("/blog", 1, 1), ("/docs", 1, 1)])
    );
    assert_eq!(
        pages["totalEvents"], 6,
        "the purchase has no page but counts"
    );
    assert_eq!(pages["botEvents"], 1);
    assert_eq!(
        (pages["otherEvents"].clone(), pages["otherValues"].clone()),
        (json!(0), json!(0))
    );

    let top = get(format!("{day}&dimension=page&limit=1")).await;
    assert_eq!(items(&top), owned(&[("/pricing", 3, 3)]));
    assert_eq!(
        (top["otherEvents"].clone(), top["otherValues"].clone()),
        (json!(2), json!(2))
    );

    let with_bots = get(format!("{day}&dimension=page&includeBots=true")).await;
    assert_eq!(items(&with_bots)[0], ("/pricing".to_string(), 4, 4));
    assert_eq!(with_bots["totalEvents"], 7);

    let referrers = get(format!("{day}&dimension=referrerHost")).await;
    assert_eq!(
        items(&referrers),
        owned(&[("google.com", 2, 2), ("news.ycombinator.com", 1, 1)])
    );
    let types = get(format!("{day}&dimension=eventType")).await;
    assert_eq!(
        items(&types),
        owned(&[("page_view", 5, 4), ("purchase", 1, 1)])
    );
    let bots = get(format!("{day}&dimension=bot")).await;
    assert_eq!(items(&bots), owned(&[("false", 6, 4), ("true", 1, 1)]));
    let plans = get(format!("{day}&dimension=properties.plan")).await;
    assert_eq!(items(&plans), owned(&[("pro", 6, 4)]));

    let subsystems = get(format!("{day}&dimension=subsystem")).await;
    assert_eq!(
        subsystems["items"][0]["value"],
        tenant.subsystem_id.as_str()
    );
    assert_eq!(
        subsystems["items"][0]["code"],
        tenant.subsystem_code.as_str()
    );
    assert_eq!(subsystems["items"][0]["events"], 6);

    // A filter with cells (device type), one without (browser: read raw), two at once.
    let mobile = get(format!("{day}&dimension=page&where=deviceType:mobile")).await;
    assert_eq!(
        items(&mobile),
        owned(&[("/blog", 1, 1), ("/pricing", 1, 1)])
    );
    assert_eq!(mobile["totalEvents"], 2);
    let firefox = get(format!("{day}&dimension=page&where=browser:Firefox")).await;
    assert_eq!(
        items(&firefox),
        owned(&[("/pricing", 2, 2), ("/docs", 1, 1)])
    );
    assert_eq!(firefox["totalEvents"], 4);
    let both = get(format!(
        "{day}&dimension=referrerHost&where=browser:Firefox&where=page:/pricing"
    ))
    .await;
    assert_eq!(
        items(&both),
        owned(&[("google.com", 1, 1), ("news.ycombinator.com", 1, 1)])
    );
    let purchases = get(format!("{day}&dimension=page&eventType=purchase")).await;
    assert!(items(&purchases).is_empty());
    assert_eq!(purchases["totalEvents"], 1);

    // Every report filters the same way.
    let summary = app
        .summary(&tenant.key, &format!("{day}&where=deviceType:mobile"))
        .await;
    assert_eq!(
        (
            summary["totalEvents"].clone(),
            summary["uniqueUsers"].clone()
        ),
        (json!(2), json!(2))
    );
    let series = app
        .timeseries(
            &tenant.key,
            &format!("{day}&interval=hour&where=page:/pricing"),
        )
        .await;
    assert_eq!(series["buckets"][10]["count"], 2);
    assert_eq!(series["buckets"][11]["count"], 1);
}

async fn breakdowns_answer_every_dimension_and_filter(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let declared = app
        .admin(
            Method::PUT,
            &format!("/api/v1/partners/{}/dimensions", tenant.partner_id),
        )
        .json(&json!({"properties": ["plan"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), StatusCode::OK);
    seed(&app, &tenant).await;
    check_answers(&app, &tenant, DAY).await;

    // The same once both hours (and their day) are folded into cells.
    app.await_folded(2.0).await;
    check_answers(&app, &tenant, DAY_AGAIN).await;

    // Another partner's key sees none of it.
    let other = app.tenant("globex").await;
    let theirs = app
        .breakdown(&other.key, &format!("{DAY}&dimension=page"))
        .await;
    assert!(items(&theirs).is_empty());
    assert_eq!(theirs["totalEvents"], 0);
}

async fn bad_breakdown_parameters_are_400_naming_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let cases = [
        (Report::Breakdown, DAY.to_string(), "dimension"),
        (
            Report::Breakdown,
            format!("{DAY}&dimension=colour"),
            "dimension",
        ),
        (
            Report::Breakdown,
            format!("{DAY}&dimension=properties.plan"),
            "dimension",
        ),
        (
            Report::Breakdown,
            format!("{DAY}&dimension=page&limit=0"),
            "limit",
        ),
        (
            Report::Breakdown,
            format!("{DAY}&dimension=page&where=colour:red"),
            "where",
        ),
        (
            Report::Breakdown,
            format!("{DAY}&dimension=page&where=country"),
            "where",
        ),
        (Report::Summary, format!("{DAY}&where=colour:red"), "where"),
        (Report::Timeseries, format!("{DAY}&where=:x"), "where"),
    ];
    for (report, query, field) in cases {
        let response = app.report(&tenant.key, report, &query).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(error_fields(&problem), [field], "{query}");
    }
}

crate::backend_tests!(
    breakdowns_answer_every_dimension_and_filter,
    bad_breakdown_parameters_are_400_naming_them,
);

//! People, funnels and retention over real HTTP, on both stores: an anonymous visitor who
//! signs in later is one person with their earlier events; a later pairing with another
//! user is recorded, not merged; bots are left out unless asked for; bad parameters are
//! 400s naming the field.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, GOOGLEBOT, Report, Tenant, TestApp, TestAppBuilder, assert_problem, error_fields,
    spawn_app, wait_until,
};

const DAY: &str = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";

/// An event of `kind` at `time` (`2026-11-20T10:00`), by `user` and/or `anonymous`.
fn event(kind: &str, user: Option<&str>, anonymous: Option<&str>, time: &str) -> Value {
    let mut event = json!({
        "eventType": kind,
        "timestamp": format!("{time}:00Z"),
    });
    if let Some(user) = user {
        event["userId"] = json!(user);
    }
    if let Some(anonymous) = anonymous {
        event["anonymousId"] = json!(anonymous);
    }
    event
}

/// The people and what they did (times on 2026-11-20 unless dated):
/// - a1, anonymous, views at 10:00, then signs in as u1 (identify at 10:05), signs up
///   at 10:10 and buys at 10:20; a1 is later seen with u9 (14:00): recorded, not merged;
/// - u2 views at 11:00, signs up at 11:30, and again the next day;
/// - a3, never signed in, views at 12:00 and signs up at 12:10;
/// - u4 views at 13:00 and signs up two hours later (past a 1 h window), and two days on;
/// - u6 first viewed the day before, and again at 09:00;
/// - a crawler views and signs up.
fn story() -> Vec<Value> {
    let mut crawler = vec![
        event("page_view", Some("bot1"), None, "2026-11-20T16:00"),
        event("signup", Some("bot1"), None, "2026-11-20T16:01"),
    ];
    for event in &mut crawler {
        event["context"] = json!({"userAgent": GOOGLEBOT});
    }
    // Sent out of order: the purchase and sign-up before the identify that joins a1.
    let mut events = vec![
        event("purchase", Some("u1"), None, "2026-11-20T10:20"),
        event("signup", Some("u1"), None, "2026-11-20T10:10"),
        event("page_view", None, Some("a1"), "2026-11-20T10:00"),
        event("identify", Some("u1"), Some("a1"), "2026-11-20T10:05"),
        event("identify", Some("u9"), Some("a1"), "2026-11-20T14:00"),
        event("page_view", Some("u2"), None, "2026-11-20T11:00"),
        event("signup", Some("u2"), None, "2026-11-20T11:30"),
        event("signup", Some("u2"), None, "2026-11-21T09:00"),
        event("page_view", None, Some("a3"), "2026-11-20T12:00"),
        event("signup", None, Some("a3"), "2026-11-20T12:10"),
        event("page_view", Some("u4"), None, "2026-11-20T13:00"),
        event("signup", Some("u4"), None, "2026-11-20T15:00"),
        event("signup", Some("u4"), None, "2026-11-22T09:00"),
        event("page_view", Some("u6"), None, "2026-11-19T10:00"),
        event("page_view", Some("u6"), None, "2026-11-20T09:00"),
    ];
    events.extend(crawler);
    events
}

/// The story told to a new partner of `app`.
async fn told(app: &TestApp) -> Tenant {
    let tenant = app.tenant("people").await;
    let mut events = story();
    for event in &mut events {
        event["subsystem"] = json!(tenant.subsystem_code);
    }
    let response = app.send_batch(&tenant.key, &events).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    app.await_events(
        &tenant.key,
        "from=2026-11-19T00:00:00Z&to=2026-11-23T00:00:00Z&limit=100",
        events.len(),
    )
    .await;
    tenant
}

fn users(funnel: &Value) -> Vec<u64> {
    funnel["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["users"].as_u64().unwrap())
        .collect()
}

/// The hours the story's events lie in: once this many are folded (and none waits), its
/// reports read people's postings.
const STORY_HOURS: f64 = 11.0;

/// One app per store for the reports over the story (a Cassandra app costs a keyspace).
/// Funnels and retention are read from people's postings once the hours are folded, and
/// from raw events with a `where=` filter: both give the same people.
async fn people_are_joined_across_their_ids_in_funnels_and_retention(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = told(&app).await;
    app.await_folded(STORY_HOURS).await;
    for filter in ["", "&where=valid:true"] {
        funnels_count_people_joined_across_their_ids(&app, &tenant, filter).await;
        retention_counts_cohorts_by_first_start_and_later_returns(&app, &tenant.key, filter).await;
    }
    a_person_shows_their_joined_ids_first_and_last_seen_and_events(&app, &tenant).await;
    another_partners_key_sees_none_of_these_people(&app).await;
    an_alias_joins_its_previous_id_to_its_user(&app).await;
    step_filters_and_a_breakdown_of_step_1_count_only_matching_events(&app).await;
    a_join_after_the_fold_counts_the_earlier_events_at_once_and_after_the_refold(&app).await;
    bad_funnel_and_retention_parameters_name_the_field(&app).await;
}

async fn funnels_count_people_joined_across_their_ids(
    app: &TestApp,
    tenant: &Tenant,
    filter: &str,
) {
    let key = &tenant.key;
    let query = format!("{DAY}&steps=page_view,signup,purchase&window=1h{filter}");
    let funnel = app.funnel(key, &query).await;
    assert_eq!(funnel["window"], "1h");
    // u1 (as a1, then u1), u2, a3, u4 and u6 viewed; u1, u2 and a3 signed up within the
    // hour; u1 bought.
    assert_eq!(users(&funnel), [5, 3, 1]);
    let steps = funnel["steps"].as_array().unwrap();
    assert_eq!(steps[0]["eventType"], "page_view");
    assert_eq!(steps[0]["conversionFromStart"], 1.0);
    assert_eq!(steps[0]["medianSecondsFromPrevious"], Value::Null);
    assert_eq!(steps[1]["conversionFromStart"], 0.6);
    assert_eq!(steps[1]["conversionFromPrevious"], 0.6);
    // 10 min (u1), 30 min (u2), 10 min (a3).
    assert_eq!(steps[1]["medianSecondsFromPrevious"], 600.0);
    assert_eq!(steps[2]["conversionFromStart"], 0.2);
    assert!((steps[2]["conversionFromPrevious"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(steps[2]["medianSecondsFromPrevious"], 600.0);
    assert!(funnel["dataAsOf"].is_string());

    // A window of 2 h lets u4's sign-up count; the crawler counts when asked for.
    let wider = app
        .funnel(
            key,
            &format!("{DAY}&steps=page_view&steps=signup&window=2h{filter}"),
        )
        .await;
    assert_eq!(users(&wider), [5, 4]);
    let with_bots = app
        .funnel(
            key,
            &format!("{DAY}&steps=page_view,signup&window=2h&includeBots=true{filter}"),
        )
        .await;
    assert_eq!(users(&with_bots), [6, 5]);
    // The subsystem's own postings: all of the story is in it.
    // Unique users count people too: a1 is u1; u9 (the later pairing) is someone else.
    let summary = app.summary(key, &format!("{DAY}{filter}")).await;
    assert_eq!(
        summary["uniqueUsers"], 6,
        "u1, u9, u2, a3, u4, u6: {summary}"
    );
    let breakdown = app
        .breakdown(key, &format!("{DAY}&dimension=eventType&limit=10{filter}"))
        .await;
    let page_views = breakdown["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["value"] == "page_view")
        .unwrap();
    assert_eq!(page_views["uniqueUsers"], 5, "{breakdown}");
    let subsystem = &tenant.subsystem_id;
    let scoped = app
        .funnel(
            key,
            &format!("{DAY}&steps=page_view,signup&window=2h&subsystemId={subsystem}{filter}"),
        )
        .await;
    assert_eq!(users(&scoped), [5, 4]);
}

async fn retention_counts_cohorts_by_first_start_and_later_returns(
    app: &TestApp,
    key: &str,
    filter: &str,
) {
    let query =
        format!("{DAY}&startEvent=page_view&returnEvent=signup&interval=day&periods=2{filter}");
    let retention = app.retention(key, &query).await;
    assert_eq!(retention["interval"], "day");
    // u6 first viewed the day before: not in the cohort of the 20th.
    assert_eq!(
        retention["cohorts"],
        json!([{"start": "2026-11-20T00:00:00Z", "users": 4, "returned": [1, 1]}])
    );
    // Weeks start on Monday (the 20th is a Friday); the week of the 23rd had no sign-up.
    let weekly = app
        .retention(
            key,
            &format!(
                "{DAY}&startEvent=page_view&returnEvent=signup&interval=week&periods=1{filter}"
            ),
        )
        .await;
    assert_eq!(
        weekly["cohorts"],
        json!([{"start": "2026-11-16T00:00:00Z", "users": 4, "returned": [0]}])
    );
    // In New York the 20th begins at 05:00 UTC: u6's 09:00 view falls on the 20th there
    // too, but the cohorts are the zone's days the range touches (the 19th and the 20th).
    let new_york = app
        .retention(
            key,
            &format!(
                "{DAY}&startEvent=page_view&returnEvent=signup&tz=America/New_York&periods=1{filter}"
            ),
        )
        .await;
    let starts: Vec<&str> = new_york["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|cohort| cohort["start"].as_str().unwrap())
        .collect();
    assert_eq!(starts, ["2026-11-19T05:00:00Z", "2026-11-20T05:00:00Z"]);
}

async fn bad_funnel_and_retention_parameters_name_the_field(app: &TestApp) {
    let tenant = app.tenant("people-bad").await;
    let cases = [
        (Report::Funnel, format!("{DAY}&window=1h"), "steps"),
        (Report::Funnel, format!("{DAY}&steps=a&window=1h"), "steps"),
        (Report::Funnel, format!("{DAY}&steps=a,b"), "window"),
        (
            Report::Funnel,
            format!("{DAY}&steps=a,b&window=7w"),
            "window",
        ),
        (
            Report::Funnel,
            format!("{DAY}&steps=a,b&window=91d"),
            "window",
        ),
        (
            Report::Funnel,
            format!("{DAY}&steps=a,b&window=1h&where=nope:1"),
            "where",
        ),
        (
            Report::Retention,
            format!("{DAY}&returnEvent=b"),
            "startEvent",
        ),
        (
            Report::Retention,
            format!("{DAY}&startEvent=a&returnEvent=b&interval=hour"),
            "interval",
        ),
        (
            Report::Retention,
            format!("{DAY}&startEvent=a&returnEvent=b&periods=0"),
            "periods",
        ),
        (
            Report::Retention,
            format!("{DAY}&startEvent=a&returnEvent=b&tz=Mars/Base"),
            "tz",
        ),
    ];
    for (report, query, field) in cases {
        let response = app.report(&tenant.key, report, &query).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(error_fields(&problem), [field], "{query}");
    }
}

/// With a `where=` filter, which people's postings don't keep, funnels and retention read
/// raw events, at most `reports.max_raw_events`: past it a 400 naming the range.
async fn past_the_raw_event_bound_a_funnel_is_a_400_naming_from(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .configure(|config| config.reports.max_raw_events = 3)
        .spawn()
        .await;
    let tenant = app.tenant("people-bound").await;
    let events: Vec<Value> = (0..5)
        .map(|minute| {
            let mut event = event(
                "page_view",
                Some("u1"),
                None,
                &format!("2026-11-20T10:0{minute}"),
            );
            event["subsystem"] = json!(tenant.subsystem_code);
            event
        })
        .collect();
    let response = app.send_batch(&tenant.key, &events).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    app.await_events(&tenant.key, DAY, events.len()).await;
    for (report, query) in [
        (
            Report::Funnel,
            format!("{DAY}&steps=page_view,signup&window=1h&where=valid:true"),
        ),
        (
            Report::Retention,
            format!("{DAY}&startEvent=page_view&returnEvent=page_view&where=valid:true"),
        ),
    ] {
        let response = app.report(&tenant.key, report, &query).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(error_fields(&problem), ["from"], "{problem}");
    }
}

/// An alias joins its `previousId` to its user, for the earlier events too.
async fn an_alias_joins_its_previous_id_to_its_user(app: &TestApp) {
    let tenant = app.tenant("people-alias").await;
    let mut alias = event("alias", Some("u7"), None, "2026-11-20T08:30");
    alias["properties"] = json!({"previousId": "a7"});
    let mut events = vec![
        event("page_view", None, Some("a7"), "2026-11-20T08:00"),
        alias,
        event("signup", Some("u7"), None, "2026-11-20T08:40"),
    ];
    for event in &mut events {
        event["subsystem"] = json!(tenant.subsystem_code);
    }
    let response = app.send_batch(&tenant.key, &events).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    app.await_events(&tenant.key, DAY, events.len()).await;
    let funnel = app
        .funnel(
            &tenant.key,
            &format!("{DAY}&steps=page_view,signup&window=1h"),
        )
        .await;
    assert_eq!(users(&funnel), [1, 1]);
    assert_eq!(funnel["steps"][1]["medianSecondsFromPrevious"], 2400.0);
}

/// `stepWhere=N:key:value` narrows one step; steps of one type with different filters are
/// different steps; `breakdown=D` gives the funnel per top value of step 1.
async fn step_filters_and_a_breakdown_of_step_1_count_only_matching_events(app: &TestApp) {
    let tenant = app.tenant("people-steps").await;
    let view = |anonymous: &str, path: &str, time: &str| {
        let mut view = event("page_view", None, Some(anonymous), time);
        view["context"] = json!({"page": {"path": path}});
        view
    };
    let mut events = vec![
        view("a8", "/pricing", "2026-11-20T08:00"),
        event("signup", None, Some("a8"), "2026-11-20T08:10"),
        view("a9", "/blog", "2026-11-20T08:00"),
        view("a9", "/pricing", "2026-11-20T08:05"),
        event("signup", None, Some("a9"), "2026-11-20T08:10"),
        view("a10", "/blog", "2026-11-20T08:00"),
    ];
    for event in &mut events {
        event["subsystem"] = json!(tenant.subsystem_code);
    }
    let response = app.send_batch(&tenant.key, &events).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    app.await_events(&tenant.key, DAY, events.len()).await;
    let funnel = |query: &'static str| {
        let (app, key) = (app, &tenant.key);
        async move { users(&app.funnel(key, &format!("{DAY}&window=1h&{query}")).await) }
    };
    assert_eq!(funnel("steps=page_view,signup").await, [3, 2]);
    assert_eq!(
        funnel("steps=page_view,signup&stepWhere=1:page:/pricing").await,
        [2, 2]
    );
    assert_eq!(
        funnel("steps=page_view,page_view,signup&stepWhere=1:page:/blog&stepWhere=2:page:/pricing")
            .await,
        [2, 1, 1],
        "a9 read the blog, then pricing, then signed up; a10 only read the blog"
    );
    // Step 1 broken down by page: the funnel again for each page's viewers.
    let query = format!("{DAY}&window=1h&steps=page_view,signup&breakdown=page");
    let broken = app.funnel(&tenant.key, &query).await;
    assert_eq!(users(&broken), [3, 2], "the funnel as asked, as before");
    assert_eq!(broken["breakdown"]["dimension"], "page");
    let items: Vec<(String, Vec<u64>)> = broken["breakdown"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item["value"].as_str().unwrap().to_string(), users(item)))
        .collect();
    assert_eq!(
        items,
        [
            ("/blog".into(), vec![2, 1]),
            ("/pricing".into(), vec![2, 2])
        ],
        "two views each (ties by value); a10 read the blog and left"
    );
    for (bad, field) in [
        ("steps=page_view,signup&stepWhere=3:page:/a", "stepWhere"),
        ("steps=page_view,signup&stepWhere=1:nope:/a", "stepWhere"),
        ("steps=page_view,signup&stepWhere=page:/a", "stepWhere"),
        ("steps=page_view,signup&breakdown=nope", "breakdown"),
        ("steps=page_view,signup&breakdown=page&limit=0", "limit"),
        (
            "steps=page_view,signup&breakdown=page&stepWhere=1:nope:/a",
            "stepWhere",
        ),
    ] {
        let query = format!("{DAY}&window=1h&{bad}");
        let response = app.report(&tenant.key, Report::Funnel, &query).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(error_fields(&problem), [field], "{bad}: {problem}");
    }
}

/// An anonymous visitor's hour folded under the anonymous id; a sign-in later joins it to
/// the user: the hour is marked and read raw (joined) at once, then folded again under the
/// user.
async fn a_join_after_the_fold_counts_the_earlier_events_at_once_and_after_the_refold(
    app: &TestApp,
) {
    let tenant = app.tenant("people-late").await;
    let send = |events: Vec<Value>| {
        let (app, tenant) = (app, &tenant);
        async move {
            let events: Vec<Value> = events
                .into_iter()
                .map(|mut event| {
                    event["subsystem"] = json!(tenant.subsystem_code);
                    event
                })
                .collect();
            let response = app.send_batch(&tenant.key, &events).await;
            assert_eq!(response.status(), StatusCode::ACCEPTED);
        }
    };
    send(vec![
        event("page_view", None, Some("a5"), "2026-11-20T06:00"),
        event("signup", Some("u5"), None, "2026-11-20T06:30"),
    ])
    .await;
    app.await_events(&tenant.key, DAY, 2).await;
    app.await_folded(STORY_HOURS + 1.0).await;
    // Hours, not the whole day: the day's postings are refolded whenever one of its hours is.
    let query =
        "from=2026-11-20T05:00:00Z&to=2026-11-20T09:00:00Z&steps=page_view,signup&window=1h";
    assert_eq!(users(&app.funnel(&tenant.key, query).await), [1, 0]);

    send(vec![event(
        "identify",
        Some("u5"),
        Some("a5"),
        "2026-11-20T07:00",
    )])
    .await;
    app.await_events(&tenant.key, DAY, 3).await;
    assert_eq!(
        users(&app.funnel(&tenant.key, query).await),
        [1, 1],
        "a5's view is u5's as soon as the join is stored"
    );
    let u5 = person_json(app, &tenant.key, "u5").await;
    assert_eq!(
        (
            u5["anonymousIds"].clone(),
            u5["events"].clone(),
            u5["firstSeen"].clone()
        ),
        (json!(["a5"]), json!(3), json!("2026-11-20T06:00:00Z")),
        "{u5}"
    );
    // Unique users too, once the view's hour is folded again (at once on Cassandra, which
    // reads a touched hour raw; within the settle on the embedded store, which recounts
    // its sketches then).
    let hours = "from=2026-11-20T05:00:00Z&to=2026-11-20T09:00:00Z";
    wait_until(
        "a5 counts as u5 in unique users",
        Duration::from_secs(30),
        || async { app.summary(&tenant.key, hours).await["uniqueUsers"] == 1 },
    )
    .await;
    assert_eq!(
        users(&app.funnel(&tenant.key, query).await),
        [1, 1],
        "and once its hour is folded again"
    );
}

async fn person(app: &TestApp, key: &str, user: &str) -> reqwest::Response {
    let path = format!("/api/v1/people/{user}");
    app.with_key(reqwest::Method::GET, &path, key)
        .send()
        .await
        .expect("a response")
}

async fn person_json(app: &TestApp, key: &str, user: &str) -> Value {
    let response = person(app, key, user).await;
    assert_eq!(response.status(), StatusCode::OK, "person {user}");
    response.json().await.expect("a JSON body")
}

/// `GET /api/v1/people/{userId}`: u1 with a1's view, not u9's later identify; bots too.
async fn a_person_shows_their_joined_ids_first_and_last_seen_and_events(
    app: &TestApp,
    tenant: &Tenant,
) {
    let u1 = person_json(app, &tenant.key, "u1").await;
    assert_eq!(u1["userId"], "u1");
    assert_eq!(u1["anonymousIds"], json!(["a1"]));
    assert_eq!(u1["firstSeen"], "2026-11-20T10:00:00Z", "a1's view: {u1}");
    assert_eq!(u1["lastSeen"], "2026-11-20T10:20:00Z");
    assert_eq!(
        u1["events"], 4,
        "a1's view, the identify, the sign-up, the purchase"
    );
    assert!(u1["dataAsOf"].is_string());
    let u9 = person_json(app, &tenant.key, "u9").await;
    assert_eq!(
        (u9["anonymousIds"].clone(), u9["events"].clone()),
        (json!([]), json!(1)),
        "the later pairing is not merged: {u9}"
    );
    let crawler = person_json(app, &tenant.key, "bot1").await;
    assert_eq!(crawler["events"], 2, "bots are people too here");
    let u2 = person_json(app, &tenant.key, "u2").await;
    assert_eq!(u2["lastSeen"], "2026-11-21T09:00:00Z", "the next day's too");
    let missing = person(app, &tenant.key, "nobody").await;
    assert_problem(missing, StatusCode::NOT_FOUND).await;
}

/// A key of another partner sees none of these people.
async fn another_partners_key_sees_none_of_these_people(app: &TestApp) {
    let other = app.tenant("people-other").await;
    let u1 = person(app, &other.key, "u1").await;
    assert_eq!(
        u1.status(),
        StatusCode::NOT_FOUND,
        "u1 is another partner's"
    );
    let funnel = app
        .funnel(
            &other.key,
            &format!("{DAY}&steps=page_view,signup&window=1h"),
        )
        .await;
    assert_eq!(users(&funnel), [0, 0]);
    assert_eq!(funnel["steps"][0]["conversionFromStart"], 0.0);
}

crate::backend_tests!(
    people_are_joined_across_their_ids_in_funnels_and_retention,
    past_the_raw_event_bound_a_funnel_is_a_400_naming_from,
);

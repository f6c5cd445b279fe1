//! Segment's endpoints over real HTTP, as its libraries call them: the mapping of every
//! call, the write key in each place, retries stored once, Segment's limits and status
//! codes, schemas on `track`, the clock-skew rule and the settings analytics.js loads.
//! The libraries themselves are driven in `segment_sdks.rs`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, SchemaScope, TestApp, assert_problem, id_of, spawn_app};

backend_tests!(
    a_batch_of_every_call_is_stored_once_under_segments_mapping,
    analytics_js_short_forms_take_the_write_key_in_a_text_plain_body,
    a_bad_message_is_refused_alone_and_a_batch_of_only_bad_ones_is_a_400,
    segments_limits_are_answered_with_a_413,
    a_wrong_write_key_is_a_401_everywhere,
    schemas_apply_to_track_by_event_name,
    a_senders_wrong_clock_is_corrected_and_a_right_one_kept,
    settings_point_analytics_js_back_at_this_service,
);

/// A partner whose write key is pinned to its one subsystem (a Segment source).
pub struct Source {
    pub partner_id: String,
    pub write_key: String,
}

pub async fn source(app: &TestApp, code: &str) -> Source {
    let partner_id = id_of(&app.create_partner(code).await);
    let subsystem = app
        .create_subsystem(&partner_id, &format!("{code}-web"))
        .await;
    let key = app
        .create_key(
            &partner_id,
            json!({"scopes": ["ingest", "read"], "subsystemId": id_of(&subsystem)}),
        )
        .await;
    Source {
        partner_id,
        write_key: key["key"].as_str().unwrap().to_string(),
    }
}

fn basic(write_key: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{write_key}:")))
}

/// A batch as analytics-python and analytics-node send it: Basic auth and `writeKey`.
async fn post_batch(app: &TestApp, write_key: &str, batch: &[Value]) -> Response {
    let body = json!({"batch": batch, "sentAt": Utc::now(), "writeKey": write_key});
    app.client
        .post(app.url("/v1/batch"))
        .header("authorization", basic(write_key))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn assert_success(response: Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], true, "{body}");
    body
}

fn every_call() -> Vec<Value> {
    vec![
        json!({"type": "track", "event": "Order Completed", "messageId": "m-track",
               "userId": "u-1", "properties": {"total": 30},
               "context": {"ip": "192.0.2.1", "campaign": {"name": "launch"}}}),
        json!({"type": "page", "name": "Pricing", "category": "Docs", "messageId": "m-page",
               "anonymousId": "a-1", "properties": {"path": "/pricing"}}),
        json!({"type": "screen", "name": "Home", "messageId": "m-screen", "userId": "u-1"}),
        json!({"type": "identify", "messageId": "m-identify", "userId": "u-1",
               "anonymousId": "a-1", "traits": {"plan": "pro"}}),
        json!({"type": "group", "messageId": "m-group", "userId": "u-1", "groupId": "g-1",
               "traits": {"name": "Acme"}}),
        json!({"type": "alias", "messageId": "m-alias", "userId": "u-1", "previousId": "a-1"}),
    ]
}

async fn a_batch_of_every_call_is_stored_once_under_segments_mapping(backend: Backend) {
    let app = spawn_app(backend).await;
    let source = source(&app, "seg-all").await;
    assert_success(post_batch(&app, &source.write_key, &every_call()).await).await;
    // The library's retry of the same batch (its answer was lost) stores nothing twice.
    assert_success(post_batch(&app, &source.write_key, &every_call()).await).await;

    let events = app.await_events(&source.write_key, "limit=100", 6).await;
    let by_id = |id: &str| {
        events
            .iter()
            .find(|event| event["eventId"] == id)
            .unwrap_or_else(|| panic!("{id} stored"))
    };
    let track = by_id("m-track");
    assert_eq!(track["eventType"], "Order Completed");
    assert_eq!(track["properties"], json!({"total": 30}));
    assert_eq!(track["context"]["campaign"]["name"], "launch");
    assert!(
        track["context"].get("ip").is_none(),
        "the client IP is not kept unless the partner opts in"
    );
    let page = by_id("m-page");
    assert_eq!(page["eventType"], "page_view");
    assert_eq!(
        page["properties"],
        json!({"path": "/pricing", "name": "Pricing", "category": "Docs"})
    );
    assert_eq!(by_id("m-screen")["eventType"], "screen_view");
    let identify = by_id("m-identify");
    assert_eq!(
        (
            &identify["eventType"],
            &identify["userId"],
            &identify["anonymousId"]
        ),
        (&json!("identify"), &json!("u-1"), &json!("a-1"))
    );
    assert_eq!(identify["properties"], json!({"plan": "pro"}));
    assert_eq!(
        by_id("m-group")["properties"],
        json!({"name": "Acme", "groupId": "g-1"})
    );
    // The identity links are readable by type: identify's anonymousId → userId, alias's
    // previousId → userId.
    let aliases = app
        .await_events(&source.write_key, "eventType=alias", 1)
        .await;
    assert_eq!(aliases[0]["properties"]["previousId"], "a-1");
    assert_eq!(aliases[0]["userId"], "u-1");
}

async fn analytics_js_short_forms_take_the_write_key_in_a_text_plain_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let source = source(&app, "seg-ajs").await;
    let messages = [
        ("/v1/t", json!({"event": "Signed Up", "messageId": "ajs-t"})),
        ("/v1/p", json!({"name": "Home", "messageId": "ajs-p"})),
        (
            "/v1/i",
            json!({"traits": {"email": "a@example.com"}, "messageId": "ajs-i"}),
        ),
    ];
    for (path, message) in messages {
        let mut body = message.clone();
        body["anonymousId"] = json!("anon-7");
        body["writeKey"] = json!(source.write_key);
        body["sentAt"] = json!(Utc::now());
        let response = app
            .client
            .post(app.url(path))
            .header("content-type", "text/plain")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_success(response).await;
    }
    let events = app.await_events(&source.write_key, "limit=10", 3).await;
    let mut types: Vec<&str> = events
        .iter()
        .map(|event| event["eventType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["Signed Up", "identify", "page_view"]);
    assert!(events.iter().all(|event| event["anonymousId"] == "anon-7"));
}

async fn a_bad_message_is_refused_alone_and_a_batch_of_only_bad_ones_is_a_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let source = source(&app, "seg-bad").await;
    let too_big = json!({"type": "track", "event": "Big", "userId": "u",
                         "properties": {"blob": "x".repeat(33 * 1024)}});
    let batch = [
        json!({"type": "track", "event": "Good", "userId": "u", "messageId": "good"}),
        json!({"type": "track", "userId": "u"}),
        too_big.clone(),
    ];
    let body = assert_success(post_batch(&app, &source.write_key, &batch).await).await;
    let rejected: Vec<(u64, u64)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|refused| {
            let index = refused["index"].as_u64().unwrap();
            (index, refused["status"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(rejected, [(1, 400), (2, 413)]);
    app.await_events(&source.write_key, "limit=10", 1).await;

    let only_bad = [json!({"type": "track", "userId": "u"}), too_big];
    let response = post_batch(&app, &source.write_key, &only_bad).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(problem["errors"][0]["field"], "batch[0].event");
    assert_eq!(problem["errors"][1]["field"], "batch[1]");
}

async fn segments_limits_are_answered_with_a_413(backend: Backend) {
    let app = spawn_app(backend).await;
    let source = source(&app, "seg-limits").await;
    let message = |size: usize| json!({"type": "track", "event": "e", "userId": "u", "properties": {"p": "x".repeat(size)}});
    // Up to 32 KB per message and 500 KB per request are taken.
    let within: Vec<Value> = (0..15).map(|_| message(32 * 1024 - 100)).collect();
    assert_success(post_batch(&app, &source.write_key, &within).await).await;
    let over_request: Vec<Value> = (0..17).map(|_| message(31 * 1024)).collect();
    let response = post_batch(&app, &source.write_key, &over_request).await;
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    let over_count: Vec<Value> = (0..2_501).map(|_| message(1)).collect();
    let response = post_batch(&app, &source.write_key, &over_count).await;
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    let response = app
        .client
        .post(app.url("/v1/track"))
        .header("authorization", basic(&source.write_key))
        .json(&message(33 * 1024))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
}

async fn a_wrong_write_key_is_a_401_everywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let wrong = "vt_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let response = post_batch(&app, wrong, &every_call()).await;
    assert_problem(response, StatusCode::UNAUTHORIZED).await;
    let in_body = json!({"event": "x", "userId": "u", "writeKey": wrong});
    let response = app
        .client
        .post(app.url("/v1/t"))
        .header("content-type", "text/plain")
        .body(in_body.to_string())
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNAUTHORIZED).await;
    let response = app.get(&format!("/v1/projects/{wrong}/settings")).await;
    assert_problem(response, StatusCode::UNAUTHORIZED).await;
    let no_key = app
        .client
        .post(app.url("/v1/batch"))
        .json(&json!({"batch": every_call()}))
        .send()
        .await
        .unwrap();
    assert_problem(no_key, StatusCode::UNAUTHORIZED).await;
}

async fn schemas_apply_to_track_by_event_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let source = source(&app, "seg-schema").await;
    let schema = json!({"mode": "reject", "schema": {
        "type": "object", "required": ["total"], "properties": {"total": {"type": "number"}}}});
    let response = app
        .put_schema(
            SchemaScope::Partner(&source.partner_id),
            "Order Completed",
            &schema,
        )
        .await;
    assert!(response.status().is_success());
    let batch = [
        json!({"type": "track", "event": "Order Completed", "userId": "u", "properties": {"total": 5}}),
        json!({"type": "track", "event": "Order Completed", "userId": "u", "properties": {"total": "five"}}),
        json!({"type": "track", "event": "Other", "userId": "u", "properties": {"total": "five"}}),
    ];
    let body = assert_success(post_batch(&app, &source.write_key, &batch).await).await;
    assert_eq!(body["rejected"][0]["index"], 1);
    assert_eq!(body["rejected"][0]["status"], 422);
    assert_eq!(body["rejected"].as_array().unwrap().len(), 1);
    app.await_events(&source.write_key, "limit=10", 2).await;
}

async fn a_senders_wrong_clock_is_corrected_and_a_right_one_kept(backend: Backend) {
    let app = spawn_app(backend).await;
    let source = source(&app, "seg-clock").await;
    let now = Utc::now();
    let historical = (now - Duration::days(3)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let right_clock = json!({"batch": [
        {"type": "track", "event": "Imported", "userId": "u", "messageId": "kept",
         "timestamp": historical}],
        "sentAt": now});
    // A device an hour ahead, which queued its event 10 s before sending it.
    let ahead = now + Duration::hours(1);
    let wrong_clock = json!({"batch": [
        {"type": "track", "event": "Opened", "userId": "u", "messageId": "corrected",
         "timestamp": ahead - Duration::seconds(10)}],
        "sentAt": ahead});
    for body in [right_clock, wrong_clock] {
        let response = app
            .client
            .post(app.url("/v1/batch"))
            .header("authorization", basic(&source.write_key))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_success(response).await;
    }
    let from = (now - Duration::days(7)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let query = format!("from={from}&limit=10");
    let events = app.await_events(&source.write_key, &query, 2).await;
    let time_of = |id: &str, field: &str| -> DateTime<Utc> {
        let event = events.iter().find(|event| event["eventId"] == id).unwrap();
        event[field].as_str().unwrap().parse().unwrap()
    };
    let sent_time: DateTime<Utc> = historical.parse().unwrap();
    assert_eq!(time_of("kept", "timestamp"), sent_time);
    let corrected = time_of("corrected", "timestamp");
    let received = time_of("corrected", "receivedAt");
    assert_eq!(received - corrected, Duration::seconds(10));
}

async fn settings_point_analytics_js_back_at_this_service(backend: Backend) {
    let app = spawn_app(backend).await;
    let source = source(&app, "seg-settings").await;
    let response = app
        .get(&format!("/v1/projects/{}/settings", source.write_key))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("private")
    );
    let settings: Value = response.json().await.unwrap();
    let destination = &settings["integrations"]["Segment.io"];
    assert_eq!(destination["apiHost"], format!("{}/v1", app.address));
    assert_eq!(destination["protocol"], "http");
    assert_eq!(destination["apiKey"], source.write_key.as_str());
}

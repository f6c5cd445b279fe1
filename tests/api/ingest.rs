use std::io::Write;

use reqwest::StatusCode;
use serde_json::{Value, json};
use volcanion::config::Acknowledge;

use crate::helpers::{Backend, TestAppBuilder, assert_problem, error_fields, event, spawn_app};

const DAY: &str = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";

async fn a_single_event_is_accepted_and_stored_as_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let mut body = event(&tenant, "page_view", "u1", "2026-11-20T10:30:00.123Z");
    body["anonymousId"] = json!("anon-1");
    body["context"] = json!({"ip": "203.0.113.9", "userAgent": "curl", "locale": "de-DE"});
    let response = app.send_event(&tenant.key, &body).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(response.headers().contains_key("ratelimit-remaining"));
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["isValid"], true);
    assert_eq!(accepted["validationErrors"], json!([]));
    assert!(accepted["receivedAt"].is_string());

    let stored = app.await_events(&tenant.key, DAY, 1).await;
    let stored = &stored[0];
    assert_eq!(stored["eventId"], accepted["eventId"]);
    assert_eq!(stored["partnerId"], tenant.partner_id.as_str());
    assert_eq!(stored["subsystemId"], tenant.subsystem_id.as_str());
    assert_eq!(stored["eventType"], "page_view");
    assert_eq!(stored["timestamp"], "2026-11-20T10:30:00.123Z");
    assert_eq!(stored["userId"], "u1");
    assert_eq!(stored["anonymousId"], "anon-1");
    assert_eq!(stored["properties"], json!({"page": "/home"}));
    assert_eq!(stored["context"]["locale"], "de-DE");
    assert!(stored["context"].get("ip").is_none(), "not kept by default");
    assert!(stored["correlationId"].is_string());
}

async fn the_client_ip_is_kept_only_for_a_partner_that_opted_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let opted_in = app
        .patch_partner(&tenant.partner_id, &json!({"storeClientIp": true}))
        .await;
    assert_eq!(opted_in.status(), StatusCode::OK);
    let mut body = event(&tenant, "page_view", "u1", "2026-11-20T10:30:00Z");
    body["context"] = json!({"ip": "203.0.113.9", "locale": "de-DE"});
    let response = app.send_event(&tenant.key, &body).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let stored = app.await_events(&tenant.key, DAY, 1).await;
    assert_eq!(stored[0]["context"]["ip"], "203.0.113.9");
    assert_eq!(stored[0]["context"]["locale"], "de-DE");
}

async fn aliases_and_subsystem_ids_are_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let body = json!({
        "eventName": "Order Completed",
        "eventTimestamp": "2026-11-20T12:00:00+01:00",
        "anonymousId": "anon",
        "subsystem": tenant.subsystem_id,
    });
    assert_eq!(
        app.send_event(&tenant.key, &body).await.status(),
        StatusCode::ACCEPTED
    );
    let stored = app.await_events(&tenant.key, DAY, 1).await;
    assert_eq!(stored[0]["eventType"], "Order Completed");
    assert_eq!(stored[0]["timestamp"], "2026-11-20T11:00:00Z");
}

async fn invalid_events_get_400_naming_each_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let body = json!({"eventType": "  ", "timestamp": "noon", "properties": "x", "subsystem": tenant.subsystem_code});
    let problem = assert_problem(
        app.send_event(&tenant.key, &body).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        error_fields(&problem),
        ["eventType", "timestamp", "properties", "userId"]
    );

    let unknown_subsystem = json!({"eventType": "x", "userId": "u", "subsystem": "nope"});
    let problem = assert_problem(
        app.send_event(&tenant.key, &unknown_subsystem).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "subsystem");
}

async fn bodies_that_are_not_json_objects_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let send = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/api/v1/events"))
            .header("x-api-key", &tenant.key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_problem(
        send("{oops", "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(
        send("[1,2]", "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(
        send("eventType=x", "application/x-www-form-urlencoded")
            .await
            .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
}

async fn oversized_bodies_are_413(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .configure(|config| config.http.max_request_size = bytesize::ByteSize::kib(4))
        .spawn()
        .await;
    let tenant = app.tenant("acme").await;
    let mut body = event(&tenant, "big", "u1", "2026-11-20T10:00:00Z");
    body["properties"] = json!({"blob": "x".repeat(8 * 1024)});
    assert_problem(
        app.send_event(&tenant.key, &body).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
}

async fn gzip_bodies_are_decompressed(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let body = serde_json::to_vec(&event(&tenant, "zipped", "u1", "2026-11-20T10:00:00Z")).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&body).unwrap();
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .header("x-api-key", &tenant.key)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(encoder.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let stored = app.await_events(&tenant.key, DAY, 1).await;
    assert_eq!(stored[0]["eventType"], "zipped");
}

async fn browsers_send_beacons_as_text_with_the_key_in_the_url(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let body = event(&tenant, "beacon", "u1", "2026-11-20T10:00:00Z").to_string();
    let response = app
        .client
        .post(app.url(&format!("/api/v1/events?apiKey={}", tenant.key)))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("origin", "https://shop.example")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    app.await_events(&tenant.key, DAY, 1).await;
}

async fn cors_preflight_allows_the_ingest_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/events"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-api-key,content-type")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let allowed = response.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        allowed.contains("x-api-key") && allowed.contains("content-type"),
        "{allowed}"
    );
}

async fn one_bad_event_never_sinks_the_batch(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let events = vec![
        event(&tenant, "good", "u1", "2026-11-20T10:00:00Z"),
        json!({"eventType": "", "userId": "u1", "subsystem": tenant.subsystem_code}),
        json!("not an object"),
        json!({"eventType": "x", "userId": "u1", "subsystem": "unknown"}),
        event(&tenant, "good", "u2", "2026-11-20T10:00:01Z"),
    ];
    let response = app.send_batch(&tenant.key, &events).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(2), Some(3))
    );
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    for (index, result) in results.iter().enumerate() {
        assert_eq!(result["index"], index);
    }
    assert!(results[0]["error"].is_null() && results[0]["eventId"].is_string());
    assert_eq!(results[1]["error"]["status"], 400);
    assert_eq!(results[1]["error"]["errors"][0]["field"], "eventType");
    assert_eq!(results[2]["error"]["status"], 400);
    assert_eq!(results[3]["error"]["errors"][0]["field"], "subsystem");
    let stored = app.await_events(&tenant.key, DAY, 2).await;
    assert!(stored.iter().all(|event| event["eventType"] == "good"));
}

async fn batch_limits_are_enforced(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let too_many: Vec<Value> = (0..1001)
        .map(|i| event(&tenant, "e", &format!("u{i}"), "2026-11-20T10:00:00Z"))
        .collect();
    assert_problem(
        app.send_batch(&tenant.key, &too_many).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_problem(
        app.send_batch(&tenant.key, &[]).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let wrong_shape = app
        .client
        .post(app.url("/api/v1/events/batch"))
        .header("x-api-key", &tenant.key)
        .json(&json!([{"eventType": "x"}]))
        .send()
        .await
        .unwrap();
    assert_problem(wrong_shape, StatusCode::BAD_REQUEST).await;
    let mut oversized = event(&tenant, "big", "u1", "2026-11-20T10:00:00Z");
    oversized["properties"] = json!({"blob": "x".repeat(70 * 1024)});
    let body: Value = app
        .send_batch(&tenant.key, &[oversized])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["results"][0]["error"]["status"], 413);
}

async fn resending_an_event_id_stores_it_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let mut first = event(&tenant, "purchase", "u1", "2026-11-20T10:00:00Z");
    first["eventId"] = json!("client-id-1");
    assert_eq!(
        app.send_event(&tenant.key, &first).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        app.send_event(&tenant.key, &first).await.status(),
        StatusCode::ACCEPTED
    );
    let mut retry_later = first.clone();
    retry_later["timestamp"] = json!("2026-11-20T10:00:05Z");
    let batch = app
        .send_batch(&tenant.key, &[retry_later.clone(), retry_later])
        .await;
    assert_eq!(batch.status(), StatusCode::ACCEPTED);
    let mut other = event(&tenant, "purchase", "u1", "2026-11-20T11:00:00Z");
    other["eventId"] = json!("client-id-2");
    assert_eq!(
        app.send_event(&tenant.key, &other).await.status(),
        StatusCode::ACCEPTED
    );
    let stored = app.await_events(&tenant.key, DAY, 2).await;
    let ids: Vec<&str> = stored
        .iter()
        .map(|e| e["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["client-id-2", "client-id-1"]);
    assert_eq!(
        stored[1]["timestamp"], "2026-11-20T10:00:00Z",
        "the first copy wins"
    );
}

async fn the_legacy_endpoint_takes_the_key_and_json_properties_in_the_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let body = json!({
        "apiKey": tenant.key,
        "eventName": "legacy_click",
        "eventTimestamp": "2026-11-20T09:00:00Z",
        "userId": "u9",
        "subsystem": tenant.subsystem_code,
        "eventPropertiesJson": "{\"button\":\"buy\"}"
    });
    let response = app.send_legacy(&body).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let stored = app.await_events(&tenant.key, DAY, 1).await;
    assert_eq!(stored[0]["eventType"], "legacy_click");
    assert_eq!(stored[0]["properties"], json!({"button": "buy"}));

    let mut broken = body.clone();
    broken["eventPropertiesJson"] = json!("{not json");
    let response = app.send_legacy(&broken).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(problem["errors"][0]["field"], "eventPropertiesJson");
    let keyless = json!({"eventName": "x", "userId": "u"});
    let response = app.send_legacy(&keyless).await;
    assert_problem(response, StatusCode::UNAUTHORIZED).await;
}

async fn a_partner_over_its_rate_gets_429_with_retry_after(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let patched = app
        .patch_partner(&tenant.partner_id, &json!({"rateLimitPerMinute": 5}))
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let events: Vec<Value> = (0..4)
        .map(|i| event(&tenant, "e", &format!("u{i}"), "2026-11-20T10:00:00Z"))
        .collect();
    let batch = app.send_batch(&tenant.key, &events).await;
    assert_eq!(
        batch.status(),
        StatusCode::ACCEPTED,
        "a batch costs its events"
    );
    assert_eq!(batch.headers()["ratelimit-remaining"], "1");
    let fifth = app.send_event(&tenant.key, &events[0]).await;
    assert_eq!(fifth.status(), StatusCode::ACCEPTED);
    let limited = app.send_event(&tenant.key, &events[0]).await;
    assert!(
        limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(limited.headers()["ratelimit-limit"], "5");
    assert_eq!(limited.headers()["ratelimit-remaining"], "0");
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS).await;
}

async fn a_full_queue_answers_503_and_loses_nothing_it_accepted(backend: Backend) {
    // One writer storing one event per fsync'd transaction drains far slower than
    // requests of 200 events arrive, so the 200-slot queue must overflow (acknowledging
    // queued events, so that one client's requests don't wait for the store).
    let app = TestAppBuilder::new(backend)
        .configure(|config| {
            config.ingest.acknowledge = Acknowledge::Queued;
            config.ingest.queue_capacity = 200;
            config.ingest.max_batch_events = 200;
            config.ingest.writers = 1;
            config.ingest.batch_size = 1;
        })
        .spawn()
        .await;
    let tenant = app.tenant("acme").await;
    let mut accepted = 0;
    let mut overloaded = None;
    for round in 0..20 {
        let events: Vec<Value> = (0..200)
            .map(|i| {
                event(
                    &tenant,
                    "load",
                    &format!("u{round}-{i}"),
                    "2026-11-20T10:00:00Z",
                )
            })
            .collect();
        let response = app.send_batch(&tenant.key, &events).await;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            overloaded = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        accepted += 200;
    }
    let overloaded = overloaded.expect("the queue overflowed");
    assert!(overloaded.headers().contains_key("retry-after"));
    assert_problem(overloaded, StatusCode::SERVICE_UNAVAILABLE).await;
    app.await_events(&tenant.key, DAY, accepted).await;
}

crate::backend_tests!(
    a_single_event_is_accepted_and_stored_as_sent,
    the_client_ip_is_kept_only_for_a_partner_that_opted_in,
    aliases_and_subsystem_ids_are_accepted,
    invalid_events_get_400_naming_each_field,
    bodies_that_are_not_json_objects_are_refused,
    oversized_bodies_are_413,
    gzip_bodies_are_decompressed,
    browsers_send_beacons_as_text_with_the_key_in_the_url,
    cors_preflight_allows_the_ingest_headers,
    one_bad_event_never_sinks_the_batch,
    batch_limits_are_enforced,
    resending_an_event_id_stores_it_once,
    the_legacy_endpoint_takes_the_key_and_json_properties_in_the_body,
    a_partner_over_its_rate_gets_429_with_retry_after,
    a_full_queue_answers_503_and_loses_nothing_it_accepted,
);

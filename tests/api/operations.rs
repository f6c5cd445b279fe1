use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, assert_problem, event, spawn_app};

async fn correlation_ids_are_echoed_or_generated(backend: Backend) {
    let app = spawn_app(backend).await;
    let echoed = app
        .client
        .get(app.url("/health/live"))
        .header("x-correlation-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-correlation-id"], "req-42");
    let generated = app.get("/health/live").await;
    let id = generated.headers()["x-correlation-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let insane = app
        .client
        .get(app.url("/health/live"))
        .header("x-correlation-id", "x".repeat(500))
        .send()
        .await
        .unwrap();
    assert_eq!(
        insane.headers()["x-correlation-id"].len(),
        36,
        "overlong ids are replaced"
    );
}

async fn accepted_events_carry_the_request_correlation_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .header("x-api-key", &tenant.key)
        .header("x-correlation-id", "trace-me")
        .json(&event(&tenant, "e", "u", "2026-11-20T10:00:00Z"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let stored = app
        .await_events(
            &tenant.key,
            "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z",
            1,
        )
        .await;
    assert_eq!(stored[0]["correlationId"], "trace-me");
    let failing = app
        .client
        .get(app.url("/api/v1/events"))
        .header("x-correlation-id", "trace-error")
        .send()
        .await
        .unwrap();
    let problem = assert_problem(failing, StatusCode::UNAUTHORIZED).await;
    assert_eq!(problem["correlationId"], "trace-error");
}

async fn health_endpoints_report_components(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.get("/health/live").await.status(), StatusCode::OK);
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);
    let health = app.health().await;
    assert_eq!(health["status"], "up");
    assert_eq!(health["components"]["store"]["status"], "up");
    assert_eq!(health["components"]["queue"]["depth"], 0);
    assert!(health["components"]["redis"].is_object());
}

async fn metrics_count_requests_and_ingested_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let mut events: Vec<Value> = (0..3)
        .map(|i| event(&tenant, "e", &format!("u{i}"), "2026-11-20T10:00:00Z"))
        .collect();
    events.push(json!({"eventType": "", "userId": "u9", "subsystem": tenant.subsystem_code}));
    app.send_batch(&tenant.key, &events).await;
    app.await_events(
        &tenant.key,
        "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z",
        3,
    )
    .await;
    let response = app.get("/metrics").await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let ingested = format!(
        "volcanion_events_ingested_total{{partner=\"{}\",subsystem=\"{}\"}} 3",
        tenant.partner_id, tenant.subsystem_id
    );
    assert!(text.contains(&ingested), "{text}");
    assert!(text.contains("volcanion_events_stored_total 3"));
    assert!(text.contains(
        r#"http_server_requests_total{method="POST",route="/api/v1/events/batch",status="202"} 1"#
    ));
    assert!(text.contains("volcanion_ingest_queue_depth 0"));
    assert!(text.contains("volcanion_batch_write_duration_seconds_count"));
    assert!(text.contains(r#"volcanion_events_rejected_total{reason="invalid"} 1"#));
    assert!(text.contains(r#"volcanion_events_rejected_total{reason="schema"} 0"#));
}

crate::backend_tests!(
    correlation_ids_are_echoed_or_generated,
    accepted_events_carry_the_request_correlation_id,
    health_endpoints_report_components,
    metrics_count_requests_and_ingested_events,
);

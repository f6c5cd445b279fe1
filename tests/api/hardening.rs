//! Attacks on connections and bodies, made as an attacker would over raw TCP: bodies that
//! never finish, idle and half-sent connections, more connections than allowed, huge
//! declared lengths. Each test asserts the service refuses the attack and keeps serving.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use volcanion::config::Acknowledge;

use crate::helpers::{Backend, TestApp, TestAppBuilder, assert_problem, error_fields, spawn_app};
use crate::process::{resident_bytes_of, start, terminate};

/// Bounds every wait on the server, so a broken protection fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address).await.expect("connects")
}

/// Everything the server sends until it closes the connection (or `PATIENCE` runs out).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut received))
        .await
        .expect("the server answers and closes within the patience")
        .expect("reads");
    String::from_utf8_lossy(&received).into_owned()
}

/// The status line's code of a raw HTTP/1.1 answer.
fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP answer, got {answer:?}"))
}

fn post_head(path: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n{extra}\r\n"
    )
}

async fn a_body_without_a_key_is_never_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut stream = connect(&app).await;
    let head = post_head(
        "/api/v1/events/batch",
        "Content-Encoding: gzip\r\nContent-Length: 5000000\r\n",
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[0x1f, 0x8b, 0x08, 0, 0]).await.unwrap();
    // The answer comes while almost all of the declared body is still unsent.
    assert_eq!(status_of(&read_until_closed(&mut stream).await), 401);
}

async fn a_declared_length_over_the_limit_is_refused_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let mut stream = connect(&app).await;
    let head = post_head(
        "/api/v1/events/batch",
        &format!(
            "X-API-Key: {}\r\nContent-Length: 10000000000\r\n",
            tenant.key
        ),
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(status_of(&read_until_closed(&mut stream).await), 413);
}

async fn a_body_that_never_finishes_gets_408(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .configure(|config| config.http.body_read_timeout = SHORT_TIMEOUT)
        .spawn()
        .await;
    let tenant = app.tenant("acme").await;
    let mut stream = connect(&app).await;
    let head = post_head(
        "/api/v1/events",
        &format!("X-API-Key: {}\r\nContent-Length: 1000\r\n", tenant.key),
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{\"eventType\": ").await.unwrap();
    assert_eq!(status_of(&read_until_closed(&mut stream).await), 408);
    let healthy = app
        .send_event(
            &tenant.key,
            &json!({"eventType": "e", "userId": "u", "subsystem": tenant.subsystem_code}),
        )
        .await;
    assert_eq!(healthy.status(), StatusCode::ACCEPTED);
}

async fn one_event_endpoints_refuse_bodies_over_the_event_size(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let big = json!({
        "eventType": "e", "userId": "u", "subsystem": tenant.subsystem_code,
        "properties": {"blob": "x".repeat(100 * 1024)}
    });
    let single = app.send_event(&tenant.key, &big).await;
    assert_eq!(single.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let mut legacy_body = big.clone();
    legacy_body["apiKey"] = json!(tenant.key);
    let legacy = app.send_legacy(&legacy_body).await;
    assert_eq!(legacy.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

async fn silent_idle_and_half_sent_connections_are_closed(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .configure(|config| config.http.header_read_timeout = SHORT_TIMEOUT)
        .spawn()
        .await;
    let mut silent = connect(&app).await;
    let mut half_sent = connect(&app).await;
    half_sent
        .write_all(b"GET /health/live HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let mut idle = connect(&app).await;
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_until_closed(&mut silent).await, "");
    let half_answer = read_until_closed(&mut half_sent).await;
    assert!(!half_answer.contains("200 OK"), "{half_answer}");
    // The idle keep-alive connection got its answer, then was closed for idling.
    assert_eq!(status_of(&read_until_closed(&mut idle).await), 200);
}

async fn connections_over_the_cap_wait_until_a_slot_frees(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .configure(|config| {
            config.http.max_connections = 3;
            config.http.header_read_timeout = SHORT_TIMEOUT;
        })
        .spawn()
        .await;
    let mut hogs = Vec::new();
    for _ in 0..3 {
        hogs.push(connect(&app).await);
    }
    // Served once the idle connections are closed: the cap held them, not the process.
    let served = tokio::time::timeout(PATIENCE, app.get("/health/live"))
        .await
        .expect("served once a slot frees");
    assert_eq!(served.status(), StatusCode::OK);
    for mut hog in hogs {
        assert_eq!(read_until_closed(&mut hog).await, "");
    }
}

/// Both `Content-Length` and `Transfer-Encoding`: the chunked framing alone counts (RFC
/// 9112 §6.3) and the connection closes after the answer, so nothing can be smuggled
/// behind the body as a second request.
async fn a_request_framed_two_ways_cannot_smuggle_another(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut stream = connect(&app).await;
    let smuggled = "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n";
    let request = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let answers = read_until_closed(&mut stream).await;
    assert_eq!(status_of(&answers), 401);
    assert_eq!(answers.matches("HTTP/1.1 ").count(), 1, "{answers}");
}

/// 150 connections with unfinished gzip bodies and no key: the process stays small and
/// answers others at once; then a SIGTERM with a half-sent request still exits.
async fn unfinished_bodies_cost_no_memory_and_do_not_block_shutdown(backend: Backend) {
    let data_dir = tempfile::TempDir::new().unwrap();
    let settings = [
        ("VOLCANION_HTTP__SHUTDOWN_GRACE", "1s"),
        // Only the shutdown grace, not the header timeout, can end the half-sent request.
        ("VOLCANION_HTTP__HEADER_READ_TIMEOUT", "60s"),
    ];
    let process = start(data_dir.path(), backend, &settings).await;
    let before = process.resident_bytes();
    let mut attackers = Vec::new();
    for _ in 0..150 {
        let mut stream = TcpStream::connect(process.app.address).await.unwrap();
        let head = post_head(
            "/api/v1/events/batch",
            "Content-Encoding: gzip\r\nContent-Length: 5000000\r\n",
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // The server may answer 401 and close before all of this is sent: that is the point.
        let _ = stream
            .write_all(&[0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3])
            .await;
        let _ = stream.write_all(&vec![0u8; 5000]).await;
        attackers.push(stream);
    }
    let live = process.app.get("/health/live").await;
    assert_eq!(live.status(), StatusCode::OK);
    let grown = process.resident_bytes().saturating_sub(before);
    eprintln!("resident memory growth under 150 unfinished unauthenticated bodies: {grown} bytes");
    assert!(grown < 64 << 20, "resident memory grew by {grown} bytes");
    let mut half_sent = TcpStream::connect(process.app.address).await.unwrap();
    half_sent
        .write_all(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Le")
        .await
        .unwrap();
    terminate(process).await;
    drop(attackers);
}

/// Big events fill the queue's byte budget long before its event count: the overflow is
/// a `503`, and every event accepted before it is stored. (In-memory acknowledgement, so
/// one client can fill the queue; durable 202s hold the same budget while they wait.)
async fn the_queue_is_bounded_by_the_bytes_events_hold(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .configure(|config| {
            config.ingest.acknowledge = Acknowledge::Queued;
            config.ingest.queue_max_bytes = bytesize::ByteSize::kib(512);
            config.ingest.writers = 1;
            config.ingest.batch_size = 1;
        })
        .spawn()
        .await;
    let tenant = app.tenant("acme").await;
    let blob = "x".repeat(30 * 1024);
    let mut accepted = 0;
    let mut overloaded = false;
    for round in 0..40 {
        let events: Vec<_> = (0..10)
            .map(|i| {
                json!({
                    "eventType": "big", "userId": format!("u{round}-{i}"),
                    "subsystem": tenant.subsystem_code, "timestamp": "2026-11-20T10:00:00Z",
                    "properties": {"blob": blob}
                })
            })
            .collect();
        let response = app.send_batch(&tenant.key, &events).await;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            overloaded = true;
            break;
        }
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        accepted += 10;
    }
    assert!(
        overloaded,
        "512 KiB of queue can't hold 40 batches of 300 KiB"
    );
    app.await_events(
        &tenant.key,
        "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z&limit=1000",
        accepted,
    )
    .await;
}

async fn deeply_nested_properties_are_refused_by_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let deep = format!("{}0{}", "[".repeat(100), "]".repeat(100));
    let body = format!(
        r#"{{"eventType": "e", "userId": "u", "subsystem": "{}", "properties": {{"a": {deep}}}}}"#,
        tenant.subsystem_code
    );
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .header("x-api-key", &tenant.key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(error_fields(&problem), ["properties"]);
}

/// Only an accepted request spends its nonce: the corrected retry of a refused one passes,
/// and a true replay of the accepted one is still a `409`.
async fn a_refused_request_does_not_spend_its_nonce(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let send = |event: serde_json::Value| {
        app.client
            .post(app.url("/api/v1/events"))
            .header("x-api-key", &tenant.key)
            .header("x-request-timestamp", chrono::Utc::now().to_rfc3339())
            .header("x-request-nonce", "nonce-7")
            .json(&event)
            .send()
    };
    let broken = json!({"eventType": "", "userId": "u", "subsystem": tenant.subsystem_code});
    assert_eq!(
        send(broken).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let fixed = json!({"eventType": "e", "userId": "u", "subsystem": tenant.subsystem_code});
    assert_eq!(
        send(fixed.clone()).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(send(fixed).await.unwrap().status(), StatusCode::CONFLICT);
}

/// A request the partner's budget refuses costs its key nothing (all budgets or none).
async fn a_request_refused_by_the_partner_is_not_charged_to_the_key(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .configure(|config| config.limits.key_rate_limit_per_minute = 10)
        .spawn()
        .await;
    let tenant = app.tenant("acme").await;
    let patched = app
        .patch_partner(&tenant.partner_id, &json!({"rateLimitPerMinute": 5}))
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let batch: Vec<_> = (0..5)
        .map(|i| json!({"eventType": "e", "userId": format!("u{i}"), "subsystem": tenant.subsystem_code}))
        .collect();
    assert_eq!(
        app.send_batch(&tenant.key, &batch).await.status(),
        StatusCode::ACCEPTED
    );
    let refused = app.send_batch(&tenant.key, &batch).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // A new partner quota is a fresh budget; the key's has 5 of its 10 left, not 0.
    let raised = app
        .patch_partner(&tenant.partner_id, &json!({"rateLimitPerMinute": 1000}))
        .await;
    assert_eq!(raised.status(), StatusCode::OK);
    assert_eq!(
        app.send_batch(&tenant.key, &batch).await.status(),
        StatusCode::ACCEPTED
    );
}

/// JSON the body's first pass skims but a full parse refuses (a lone surrogate escape, a
/// number past f64) is a field error of its event, never a dropped connection.
async fn undecodable_values_are_refused_per_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let subsystem = &tenant.subsystem_code;
    let body = format!(
        r#"{{"events": [
            {{"eventType": "\ud800", "userId": "u", "subsystem": "{subsystem}"}},
            {{"eventType": "e", "userId": 1e400, "subsystem": "{subsystem}"}},
            {{"eventType": "e", "userId": "u", "subsystem": "{subsystem}", "properties": {{"n": 1e400}}}},
            {{"eventType": "e", "userId": "u", "subsystem": "{subsystem}"}}
        ]}}"#
    );
    let response = app
        .client
        .post(app.url("/api/v1/events/batch"))
        .header("x-api-key", &tenant.key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["rejected"], 3);
    for index in 0..3 {
        assert_eq!(answer["results"][index]["error"]["status"], 400, "{answer}");
    }
}

crate::backend_tests!(
    a_body_without_a_key_is_never_read,
    a_declared_length_over_the_limit_is_refused_at_once,
    a_body_that_never_finishes_gets_408,
    one_event_endpoints_refuse_bodies_over_the_event_size,
    silent_idle_and_half_sent_connections_are_closed,
    connections_over_the_cap_wait_until_a_slot_frees,
    a_request_framed_two_ways_cannot_smuggle_another,
    unfinished_bodies_cost_no_memory_and_do_not_block_shutdown,
    the_queue_is_bounded_by_the_bytes_events_hold,
    deeply_nested_properties_are_refused_by_field,
    a_refused_request_does_not_spend_its_nonce,
    a_request_refused_by_the_partner_is_not_charged_to_the_key,
    undecodable_values_are_refused_per_event,
);

/// The amplification attack with a valid (public) ingest key: gzip batches of events
/// whose properties are long `[0,0,…]` arrays, from 12 connections at once. Memory stays
/// bounded by the byte budgets (bodies in flight, queued events), whatever the senders do.
#[tokio::test]
async fn compressed_batches_of_large_events_keep_memory_bounded() {
    use std::io::Write;

    let data_dir = tempfile::TempDir::new().unwrap();
    let settings = [
        ("VOLCANION_HTTP__MAX_BODY_BYTES_IN_FLIGHT", "32MiB"),
        ("VOLCANION_INGEST__QUEUE_MAX_BYTES", "32MiB"),
    ];
    let process = start(data_dir.path(), Backend::Embedded, &settings).await;
    let tenant = process.app.tenant("acme").await;
    let zeros = vec![0u8; 9_000];
    let events: Vec<_> = (0..200)
        .map(|_| json!({"eventType": "e", "userId": "u", "subsystem": tenant.subsystem_code, "properties": {"a": zeros}}))
        .collect();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(&serde_json::to_vec(&json!({"events": events})).unwrap())
        .unwrap();
    let gzipped = encoder.finish().unwrap();
    let before = process.resident_bytes();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let pid = process.pid();
    let sampler = {
        let peak = std::sync::Arc::clone(&peak);
        tokio::spawn(async move {
            while let Some(resident) = resident_bytes_of(pid) {
                peak.fetch_max(resident, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let senders: Vec<_> = (0..12)
        .map(|_| {
            let (client, url, key, body) = (
                process.app.client.clone(),
                process.app.url("/api/v1/events/batch"),
                tenant.key.clone(),
                gzipped.clone(),
            );
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..5 {
                    let response = client
                        .post(&url)
                        .header("x-api-key", &key)
                        .header("content-type", "application/json")
                        .header("content-encoding", "gzip")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    statuses.push(response.status().as_u16());
                }
                statuses
            })
        })
        .collect();
    for sender in senders {
        for status in sender.await.unwrap() {
            assert!([202, 503].contains(&status), "status {status}");
        }
    }
    let live = process.app.get("/health/live").await;
    assert_eq!(live.status(), StatusCode::OK);
    sampler.abort();
    let grown = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    eprintln!(
        "peak resident memory growth under 12 senders of gzip [0,0,…] batches: {grown} bytes"
    );
    assert!(grown < 256 << 20, "resident memory grew by {grown} bytes");
    terminate(process).await;
}

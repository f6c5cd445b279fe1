//! What a client without a key, or a key holder, can make the service keep or show:
//! metric series from made-up methods and paths, memory from a batch of millions of
//! elements, a `202` for a batch none of whose events could be stored, and the store's
//! own error text in a public `/health`; and the monitoring listener that takes `/metrics`
//! and the detailed `/health` away from the public one (`telemetry.metrics_listen`).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use volcanion::store::StoreError;

use crate::helpers::{Backend, TestApp, TestAppBuilder, event, spawn_app, wait_until};
use crate::hooked_store::{HookedStore, StoreHooks};
use crate::process::{start, terminate};

/// A driver error as Cassandra's would read: hosts and users nobody outside should see.
const DRIVER_ERROR: &str = "connection refused by 10.9.8.7:9042 (user ops_admin, keyspace prod)";

/// Fails `ping` and event-structure lookups while set: a store outage as the request path
/// meets it, on either backend.
#[derive(Default)]
struct Outage {
    failing: AtomicBool,
}

#[async_trait]
impl StoreHooks for Outage {
    async fn before_lookup(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(DRIVER_ERROR.to_string()));
        }
        Ok(())
    }
}

/// An app on the configured store with an `Outage` switch.
async fn spawn_failable(builder: TestAppBuilder) -> (TestApp, Arc<Outage>) {
    let outage = Arc::new(Outage::default());
    let hooks = Arc::clone(&outage);
    let app = builder
        .spawn_wrapping(|inner| HookedStore::wrap(inner, hooks))
        .await;
    (app, outage)
}

/// Made-up methods and unmatched paths, each distinct, then `/metrics`: none of them is a
/// label, and the request counter keeps a handful of series.
async fn made_up_methods_and_paths_add_no_metric_series(backend: Backend) {
    let app = spawn_app(backend).await;
    for index in 0..50 {
        let method = Method::from_bytes(format!("MADEUP{index}").as_bytes()).unwrap();
        for path in ["/health".to_string(), format!("/nowhere-{index}")] {
            let response = app
                .client
                .request(method.clone(), app.url(&path))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_client_error(), "{}", response.status());
        }
        app.get(&format!("/unmatched-{index}")).await;
    }
    let metrics = app.metrics().await;
    assert!(!metrics.contains("MADEUP"), "{metrics}");
    assert!(!metrics.contains("nowhere-"), "{metrics}");
    assert!(!metrics.contains("unmatched-"), "{metrics}");
    let series: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("http_server_requests_total{"))
        .collect();
    assert!(series.len() <= 6, "{series:#?}");
    assert!(
        series.iter().any(|line| line.contains(r#"method="other""#)),
        "{series:#?}"
    );
}

/// The peak resident memory (`VmHWM`) of a process so far: unlike `VmRSS`, it can't miss
/// a short-lived allocation, nor count memory the allocator kept after freeing it.
fn peak_resident_bytes_of(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// `{"<array>":[0,0,…]}` with `elements` zeros, gzipped (a few KB).
fn gzipped_zeros(array: &str, elements: usize) -> Vec<u8> {
    let mut json = format!("{{\"{array}\":[");
    json.push_str(&"0,".repeat(elements - 1));
    json.push_str("0]}");
    gzip(json.as_bytes())
}

/// `{"<array>":[0],"padding":"…"}`, as long as `gzipped_zeros(array, elements)` unzipped.
fn gzipped_padding(array: &str, elements: usize) -> Vec<u8> {
    let padding = "x".repeat(2 * elements - 18);
    gzip(format!("{{\"{array}\":[0],\"padding\":\"{padding}\"}}").as_bytes())
}

/// A few KB of gzip holding two million elements, sent 20 times to the native batch and
/// 20 times to Segment's: each is refused `413`, and the process's peak memory grows by
/// about the decompressed bodies, not by the tens of MB a list of every element costs.
#[tokio::test]
async fn a_batch_of_millions_of_elements_is_refused_while_parsing() {
    let data_dir = tempfile::TempDir::new().unwrap();
    // The allocator hands freed memory back at once, so the peak resident memory is the
    // peak of what was live, not of what was freed and not yet returned (mimalloc waits
    // 10 ms by default, across which sequential requests would add up).
    let settings = [("MIMALLOC_PURGE_DELAY", "0")];
    let process = start(data_dir.path(), Backend::Embedded, &settings).await;
    let tenant = process.app.tenant("acme").await;
    // Under the 5 MiB native batch limit, and Segment's 500 KB.
    let native = gzipped_zeros("events", 2_000_000);
    let segment = gzipped_zeros("batch", 200_000);
    assert!(native.len() < 16 << 10, "{} bytes gzipped", native.len());
    let send = |path: &str, body: &Vec<u8>| {
        process
            .app
            .client
            .post(process.app.url(path))
            .header("x-api-key", &tenant.key)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(body.clone())
            .send()
    };
    // Bodies as large, holding one element: the baseline includes what reading and
    // decompressing such a body costs (and what the allocator keeps of it per thread).
    let native_padded = gzipped_padding("events", 2_000_000);
    let segment_padded = gzipped_padding("batch", 200_000);
    for _ in 0..5 {
        assert_eq!(
            send("/api/v1/events/batch", &native_padded)
                .await
                .unwrap()
                .status(),
            202
        );
        assert_eq!(
            send("/v1/batch", &segment_padded).await.unwrap().status(),
            400
        );
    }
    let before = peak_resident_bytes_of(process.pid());
    for _ in 0..20 {
        let native_answer = send("/api/v1/events/batch", &native).await.unwrap();
        assert_eq!(native_answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let problem: Value = native_answer.json().await.unwrap();
        assert_eq!(
            problem["detail"], "a batch holds at most 1000 events, got more",
            "{problem}"
        );
        let segment_answer = send("/v1/batch", &segment).await.unwrap();
        assert_eq!(segment_answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    let grown = peak_resident_bytes_of(process.pid()).saturating_sub(before);
    eprintln!("peak resident memory growth over 40 batches of [0,0,…]: {grown} bytes");
    assert!(
        grown < 16 << 20,
        "peak resident memory grew by {grown} bytes"
    );
    terminate(process).await;
}

/// A batch whose array goes on past the limit and then stops being JSON is `413`, not
/// `400`: the elements past the limit are never parsed, so they can't be collected.
async fn elements_past_the_batch_limit_are_never_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    for (path, array, limit) in [
        ("/api/v1/events/batch", "events", 1_000),
        ("/v1/batch", "batch", 2_500),
    ] {
        let body = format!("{{\"{array}\":[{}0, not json at all", "0,".repeat(limit));
        let response = app
            .client
            .post(app.url(path))
            .header("x-api-key", &tenant.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let within_limit = format!(
            "{{\"{array}\":[{}0, not json at all",
            "0,".repeat(limit - 1)
        );
        let response = app
            .client
            .post(app.url(path))
            .header("x-api-key", &tenant.key)
            .header("content-type", "application/json")
            .body(within_limit)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
    }
}

/// Every event of a batch met the store's outage: `503` with `Retry-After`, so the client
/// sends it again. One event accepted, or every event the client's fault: `202` as before.
async fn a_batch_nothing_of_which_could_be_stored_is_503(backend: Backend) {
    let (app, outage) = spawn_failable(TestAppBuilder::new(backend)).await;
    let tenant = app.tenant("acme").await;
    let now = Utc::now().to_rfc3339();
    let known = event(&tenant, "known", "u1", &now);
    // The event structure of `known` is looked up now, and cached.
    assert_eq!(
        app.send_batch(&tenant.key, std::slice::from_ref(&known))
            .await
            .status(),
        202
    );
    outage.failing.store(true, Ordering::SeqCst);
    let unknown = |event_type: &str| event(&tenant, event_type, "u1", &now);

    let response = app
        .send_batch(&tenant.key, &[unknown("new_a"), unknown("new_b")])
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let problem: Value = response.json().await.unwrap();
    assert!(!problem.to_string().contains("10.9.8.7"), "{problem}");

    let partly = app
        .send_batch(&tenant.key, &[known.clone(), unknown("new_c")])
        .await;
    assert_eq!(partly.status(), StatusCode::ACCEPTED);
    let partly: Value = partly.json().await.unwrap();
    assert_eq!(partly["accepted"], 1);
    assert_eq!(partly["results"][1]["error"]["status"], 503);

    let invalid = app
        .send_batch(
            &tenant.key,
            &[json!({"userId": "u"}), json!({"eventType": 5})],
        )
        .await;
    assert_eq!(invalid.status(), StatusCode::ACCEPTED);
    let invalid: Value = invalid.json().await.unwrap();
    assert_eq!(invalid["accepted"], 0);
}

/// The store is down: the public `/health` says so, with a generic word, never the
/// driver's text (which names hosts and users).
async fn public_health_names_no_store_error_text(backend: Backend) {
    let (app, outage) = spawn_failable(TestAppBuilder::new(backend)).await;
    outage.failing.store(true, Ordering::SeqCst);
    let response = app.get("/health").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health: Value = response.json().await.unwrap();
    assert_eq!(health["status"], "down");
    assert_eq!(health["components"]["store"]["status"], "down");
    assert_eq!(health["components"]["store"]["error"], "unavailable");
    assert!(!health.to_string().contains("10.9.8.7"), "{health}");
    assert!(health["components"]["queue"]["status"].is_string());
    assert!(health["components"]["redis"]["status"].is_string());
}

/// With `telemetry.metrics_listen` set, `/metrics` and the detailed `/health` answer
/// there only; the main listener has no `/metrics` and a `/health` of the contract's
/// shape without error text. The listener closes when the service stops.
async fn metrics_and_detailed_health_have_their_own_listener(backend: Backend) {
    let builder = TestAppBuilder::new(backend).configure(|config| {
        config.telemetry.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    });
    let (app, outage) = spawn_failable(builder).await;
    let operations = app.metrics_address.expect("a metrics listener");
    let on_operations = |path: &str| app.client.get(format!("http://{operations}{path}")).send();
    assert_eq!(app.get("/metrics").await.status(), StatusCode::NOT_FOUND);
    let metrics = on_operations("/metrics").await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("http_server_requests_total")
    );
    assert_eq!(on_operations("/health/ready").await.unwrap().status(), 200);

    outage.failing.store(true, Ordering::SeqCst);
    let public: Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(public["components"]["store"]["status"], "down");
    assert!(!public.to_string().contains("10.9.8.7"), "{public}");
    let detailed = on_operations("/health").await.unwrap();
    assert_eq!(detailed.status(), StatusCode::SERVICE_UNAVAILABLE);
    let detailed: Value = detailed.json().await.unwrap();
    let error = detailed["components"]["store"]["error"].as_str().unwrap();
    assert!(error.contains(DRIVER_ERROR), "{detailed}");

    drop(app);
    wait_until(
        "the metrics listener closes",
        Duration::from_secs(10),
        || async { tokio::net::TcpStream::connect(operations).await.is_err() },
    )
    .await;
}

crate::backend_tests!(
    made_up_methods_and_paths_add_no_metric_series,
    elements_past_the_batch_limit_are_never_read,
    a_batch_nothing_of_which_could_be_stored_is_503,
    public_health_names_no_store_error_text,
    metrics_and_detailed_health_have_their_own_listener,
);

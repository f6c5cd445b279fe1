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
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;
use volcanion::model::{ApiKey, Event, EventSchema, Partner, Subsystem};
use volcanion::rollups::{Hour, RollupDifference, RollupQuery, RollupRead, SettleOutcome};
use volcanion::store::{
    EventPage, EventQuery, EventStore, MetadataStore, RollupStore, Store, StoreError, WriteOutcome,
};

use crate::helpers::{Backend, TestApp, TestAppBuilder, event, spawn_app, wait_until};
use crate::process::{start, terminate};

/// A driver error as Cassandra's would read: hosts and users nobody outside should see.
const DRIVER_ERROR: &str = "connection refused by 10.9.8.7:9042 (user ops_admin, keyspace prod)";

/// The configured store, failing `ping` and event-structure lookups while `failing` is set:
/// a store outage as the request path meets it, on either backend.
struct FailingStore {
    inner: Arc<dyn Store>,
    failing: Arc<AtomicBool>,
}

impl FailingStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(DRIVER_ERROR.to_string()));
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for FailingStore {
    async fn write_events(&self, events: &[Event]) -> Result<WriteOutcome, StoreError> {
        self.inner.write_events(events).await
    }
    async fn write_batch(&self, events: Arc<[Event]>) -> Result<WriteOutcome, StoreError> {
        self.inner.write_batch(events).await
    }
    async fn query_events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        self.inner.query_events(query).await
    }
}

#[async_trait]
impl MetadataStore for FailingStore {
    async fn insert_partner(&self, partner: &Partner) -> Result<(), StoreError> {
        self.inner.insert_partner(partner).await
    }
    async fn update_partner(&self, partner: &Partner) -> Result<(), StoreError> {
        self.inner.update_partner(partner).await
    }
    async fn partner(&self, id: Uuid) -> Result<Option<Partner>, StoreError> {
        self.inner.partner(id).await
    }
    async fn partner_by_code(&self, code: &str) -> Result<Option<Partner>, StoreError> {
        self.inner.partner_by_code(code).await
    }
    async fn partners(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Partner>, StoreError> {
        self.inner.partners(after, limit).await
    }
    async fn insert_subsystem(&self, subsystem: &Subsystem) -> Result<(), StoreError> {
        self.inner.insert_subsystem(subsystem).await
    }
    async fn update_subsystem(&self, subsystem: &Subsystem) -> Result<(), StoreError> {
        self.inner.update_subsystem(subsystem).await
    }
    async fn subsystem(&self, id: Uuid) -> Result<Option<Subsystem>, StoreError> {
        self.inner.subsystem(id).await
    }
    async fn subsystem_by_code(
        &self,
        partner_id: Uuid,
        code: &str,
    ) -> Result<Option<Subsystem>, StoreError> {
        self.inner.subsystem_by_code(partner_id, code).await
    }
    async fn subsystems(&self, partner_id: Uuid) -> Result<Vec<Subsystem>, StoreError> {
        self.inner.subsystems(partner_id).await
    }
    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.inner.insert_api_key(key).await
    }
    async fn update_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.inner.update_api_key(key).await
    }
    async fn api_key(&self, id: Uuid) -> Result<Option<ApiKey>, StoreError> {
        self.inner.api_key(id).await
    }
    async fn api_key_by_key_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.inner.api_key_by_key_id(key_id).await
    }
    async fn api_keys(&self, partner_id: Uuid) -> Result<Vec<ApiKey>, StoreError> {
        self.inner.api_keys(partner_id).await
    }
    async fn put_schema(&self, schema: &EventSchema) -> Result<(), StoreError> {
        self.inner.put_schema(schema).await
    }
    async fn schema(
        &self,
        partner_id: Option<Uuid>,
        event_type: &str,
    ) -> Result<Option<EventSchema>, StoreError> {
        self.check()?;
        self.inner.schema(partner_id, event_type).await
    }
    async fn schemas(&self, partner_id: Option<Uuid>) -> Result<Vec<EventSchema>, StoreError> {
        self.inner.schemas(partner_id).await
    }
    async fn delete_schema(
        &self,
        partner_id: Option<Uuid>,
        event_type: &str,
    ) -> Result<bool, StoreError> {
        self.inner.delete_schema(partner_id, event_type).await
    }
    async fn event_types(&self, partner_id: Uuid) -> Result<Vec<String>, StoreError> {
        self.inner.event_types(partner_id).await
    }
    async fn add_event_type(&self, partner_id: Uuid, event_type: &str) -> Result<(), StoreError> {
        self.inner.add_event_type(partner_id, event_type).await
    }
}

#[async_trait]
impl RollupStore for FailingStore {
    async fn hourly_rollups(&self, query: &RollupQuery) -> Result<RollupRead, StoreError> {
        self.inner.hourly_rollups(query).await
    }
    async fn rebuild_rollups(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
    ) -> Result<u64, StoreError> {
        self.inner.rebuild_rollups(partner, from, to).await
    }
    async fn verify_rollups(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
    ) -> Result<Vec<RollupDifference>, StoreError> {
        self.inner.verify_rollups(partner, from, to).await
    }
    fn settle_interval(&self) -> Option<Duration> {
        self.inner.settle_interval()
    }
    async fn settle_rollups(&self, now: DateTime<Utc>) -> Result<SettleOutcome, StoreError> {
        self.inner.settle_rollups(now).await
    }
}

#[async_trait]
impl Store for FailingStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.ping().await
    }
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }
}

/// An app on the configured store wrapped in `FailingStore`, and the switch that fails it.
async fn spawn_failable(builder: TestAppBuilder) -> (TestApp, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(false));
    let switch = Arc::clone(&failing);
    let app = builder
        .spawn_wrapping(move |inner| {
            Arc::new(FailingStore {
                inner,
                failing: switch,
            })
        })
        .await;
    (app, failing)
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
    let (app, failing) = spawn_failable(TestAppBuilder::new(backend)).await;
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
    failing.store(true, Ordering::SeqCst);
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
    let (app, failing) = spawn_failable(TestAppBuilder::new(backend)).await;
    failing.store(true, Ordering::SeqCst);
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
    let (app, failing) = spawn_failable(builder).await;
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

    failing.store(true, Ordering::SeqCst);
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

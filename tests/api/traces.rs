//! OpenTelemetry traces, end to end: the real binary exports over OTLP/HTTP to a real
//! Jaeger (v2, its own OTLP receiver and in-memory store), and a request's trace arrives
//! there with its child spans and the batch write linked to it. With the collector down,
//! requests stay fast and the lost spans are counted.
//!
//! Jaeger is built by `.ci/run` (`go install`, cached) and found through
//! `VOLCANION_TEST_JAEGER=path/to/jaeger`; asked for without it, the Jaeger test fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::helpers::{Backend, Report, wait_until};
use crate::process::{start, terminate};

const JAEGER_ENV: &str = "VOLCANION_TEST_JAEGER";

#[tokio::test]
#[ignore = "needs Jaeger: VOLCANION_TEST_JAEGER and --include-ignored"]
async fn a_requests_trace_reaches_jaeger_with_its_child_spans_and_the_linked_batch_write() {
    let jaeger = Jaeger::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let service_name = format!("volcanion-test-{}", std::process::id());
    let service = start(
        data_dir.path(),
        Backend::Embedded,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &jaeger.otlp_endpoint()),
            ("OTEL_SERVICE_NAME", &service_name),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let app = &service.app;
    let tenant = app.tenant("traced").await;
    let sent = app
        .send_event(
            &tenant.key,
            &json!({"eventType": "page_view", "userId": "u-1", "subsystem": tenant.subsystem_code}),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let correlation_id = sent.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let report = app
        .report(
            &tenant.key,
            Report::Summary,
            &format!("partnerId={}", tenant.partner_id),
        )
        .await;
    assert_eq!(report.status(), StatusCode::OK);

    let ingest = jaeger
        .trace_with(&service_name, "POST /api/v1/events", |trace| {
            span_named(trace, "POST /api/v1/events")
                .is_some_and(|span| tag(span, "correlation_id") == Some(json!(correlation_id)))
        })
        .await;
    let request = span_named(&ingest, "POST /api/v1/events").unwrap();
    assert_eq!(
        tag(request, "partner_id"),
        Some(json!(tenant.partner_id)),
        "{request}"
    );
    assert_eq!(tag(request, "route"), Some(json!("/api/v1/events")));
    assert!(
        tag(request, "http.response.status_code")
            .is_some_and(|status| status.to_string().contains("202")),
        "{request}"
    );
    for child in ["authenticate", "validate", "enqueue"] {
        let span = span_named(&ingest, child).unwrap_or_else(|| panic!("{child} in {ingest}"));
        assert_eq!(
            parent_of(span),
            request["spanID"].as_str(),
            "{child} is a child of the request span"
        );
    }
    let enqueue_id = span_named(&ingest, "enqueue").unwrap()["spanID"]
        .as_str()
        .unwrap()
        .to_string();
    jaeger
        .trace_with(&service_name, "batch_write", |trace| {
            span_named(trace, "batch_write").is_some_and(|span| {
                span["references"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|reference| reference["spanID"] == enqueue_id.as_str())
            })
        })
        .await;

    let summary = jaeger
        .trace_with(&service_name, "GET /api/v1/reports/summary", |_| true)
        .await;
    assert!(span_named(&summary, "authenticate").is_some(), "{summary}");
    let everything = jaeger.traces(&service_name, None).await.to_string();
    assert!(
        !everything.contains(&tenant.key),
        "no API key in any exported span"
    );
    terminate(service).await;
}

#[tokio::test]
async fn with_the_collector_down_requests_stay_fast_and_dropped_spans_are_counted() {
    let data_dir = tempfile::tempdir().unwrap();
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let service = start(
        data_dir.path(),
        Backend::Embedded,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &nobody),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("VOLCANION_TELEMETRY__TRACE_QUEUE_SIZE", "8"),
        ],
    )
    .await;
    let app = &service.app;
    let tenant = app.tenant("untraced").await;
    let mut slowest = Duration::ZERO;
    for index in 0..40 {
        let started = Instant::now();
        let sent = app
            .send_event(
                &tenant.key,
                &json!({"eventType": "tick", "userId": format!("u-{index}"),
                        "subsystem": tenant.subsystem_code}),
            )
            .await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(sent.status(), StatusCode::ACCEPTED);
    }
    assert!(
        slowest < Duration::from_secs(1),
        "the slowest request took {slowest:?}"
    );
    wait_until(
        "spans lost to the absent collector are counted",
        Duration::from_secs(30),
        || async { dropped_spans(&app.metrics().await) > 0 },
    )
    .await;
    terminate(service).await;
}

/// The sum of `volcanion_trace_spans_dropped_total` over its reasons.
fn dropped_spans(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| line.starts_with("volcanion_trace_spans_dropped_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn span_named<'a>(trace: &'a Value, name: &str) -> Option<&'a Value> {
    trace["spans"]
        .as_array()?
        .iter()
        .find(|span| span["operationName"] == name)
}

fn tag(span: &Value, key: &str) -> Option<Value> {
    span["tags"]
        .as_array()?
        .iter()
        .find(|tag| tag["key"] == key)
        .map(|tag| tag["value"].clone())
}

fn parent_of(span: &Value) -> Option<&str> {
    span["references"]
        .as_array()?
        .iter()
        .find(|reference| reference["refType"] == "CHILD_OF")?["spanID"]
        .as_str()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Jaeger all-in-one on free loopback ports: OTLP/HTTP in, the query API out.
struct Jaeger {
    _child: Child,
    _config_dir: tempfile::TempDir,
    otlp_port: u16,
    query_port: u16,
    client: reqwest::Client,
}

impl Jaeger {
    async fn start() -> Jaeger {
        let binary = jaeger_binary();
        let config_dir = tempfile::tempdir().unwrap();
        let (otlp_port, query_port, grpc_port, health_port) =
            (free_port(), free_port(), free_port(), free_port());
        let config = config_dir.path().join("jaeger.yaml");
        std::fs::write(
            &config,
            jaeger_config(otlp_port, query_port, grpc_port, health_port),
        )
        .unwrap();
        let child = Command::new(&binary)
            .arg(format!("--config=file:{}", config.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        let client = reqwest::Client::new();
        let health = format!("http://127.0.0.1:{health_port}/status");
        wait_until("Jaeger is healthy", Duration::from_secs(60), || async {
            client
                .get(&health)
                .send()
                .await
                .is_ok_and(|response| response.status().is_success())
        })
        .await;
        Jaeger {
            _child: child,
            _config_dir: config_dir,
            otlp_port,
            query_port,
            client,
        }
    }

    fn otlp_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.otlp_port)
    }

    async fn traces(&self, service: &str, operation: Option<&str>) -> Value {
        let mut query = vec![("service", service), ("limit", "100"), ("lookback", "1h")];
        query.extend(operation.map(|operation| ("operation", operation)));
        let Ok(response) = self
            .client
            .get(format!("http://127.0.0.1:{}/api/traces", self.query_port))
            .query(&query)
            .send()
            .await
        else {
            return json!({"data": []});
        };
        response
            .json()
            .await
            .unwrap_or_else(|_| json!({"data": []}))
    }

    /// Polls until a trace with `operation` satisfies `wanted`, and returns it.
    async fn trace_with(
        &self,
        service: &str,
        operation: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let traces = self.traces(service, Some(operation)).await;
            if let Some(trace) = traces["data"]
                .as_array()
                .and_then(|traces| traces.iter().find(|trace| wanted(trace)))
            {
                return trace.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no trace of '{operation}' from {service} arrived in Jaeger: {traces}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn jaeger_binary() -> PathBuf {
    let path = std::env::var_os(JAEGER_ENV).unwrap_or_else(|| {
        panic!("{JAEGER_ENV} must name the jaeger binary (.ci/run builds it with go install)")
    });
    let path = PathBuf::from(path);
    assert!(
        Path::new(&path).is_file(),
        "{JAEGER_ENV}={} is not a file",
        path.display()
    );
    path
}

fn jaeger_config(otlp: u16, query: u16, grpc: u16, health: u16) -> String {
    format!(
        r#"service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"#
    )
}

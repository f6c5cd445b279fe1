//! Drills: the real `volcanion` binary under sustained load, then killed (SIGKILL, as an
//! OOM kill or a crash would), stopped (SIGTERM), deprived of Redis, or offered far more
//! than it can store. After each, every event answered 202 is stored, exactly once.
//!
//! A separate test binary, so the load can't disturb the parallel API suite, and the
//! drills take turns (`one_at_a_time`). The Cassandra variants are ignored unless run with
//! `--include-ignored` and `VOLCANION_TEST_CASSANDRA_NODES`, like the Cassandra API suite;
//! the Redis drill likewise needs `VOLCANION_TEST_REDIS_URL` (it starts a redis-server of
//! its own, which it kills).

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "api/own_redis.rs"]
mod own_redis;
#[allow(dead_code)]
#[path = "api/process.rs"]
mod process;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use helpers::{Backend, Tenant, TestApp, TestAppBuilder};
use own_redis::{OwnRedis, free_port};
use process::{Process, resident_bytes_of, start, terminate};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// How long any phase may take before the drill fails (a hang guard, not a measurement).
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);
const BATCH_EVENTS: usize = 50;

/// Drills share two cores: one at a time keeps each one's load what it says.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// What the load senders saw.
#[derive(Default)]
struct Tally {
    /// Ids of the events answered 202 (client-chosen for batches, server-made for singles).
    acknowledged: Mutex<Vec<String>>,
    acknowledged_count: AtomicUsize,
    statuses: Mutex<BTreeMap<u16, usize>>,
    /// Requests without an answer (the connection failed or closed).
    unanswered: AtomicUsize,
    stop: AtomicBool,
}

impl Tally {
    fn acknowledged(&self) -> usize {
        self.acknowledged_count.load(Ordering::Relaxed)
    }

    fn statuses(&self) -> BTreeMap<u16, usize> {
        self.statuses.lock().unwrap().clone()
    }

    /// Fails unless every answer was one of `allowed`.
    fn assert_only(&self, allowed: &[u16]) {
        let statuses = self.statuses();
        assert!(
            statuses.keys().all(|status| allowed.contains(status)),
            "answers {statuses:?}, allowed only {allowed:?}"
        );
    }
}

/// Senders that post in a closed loop until stopped: even ones batches of
/// `BATCH_EVENTS` with client-chosen ids, odd ones single events with server-made ids.
struct Load {
    tally: Arc<Tally>,
    senders: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(address: SocketAddr, tenant: &Tenant, senders: usize, properties: Value) -> Load {
        let tally = Arc::new(Tally::default());
        let senders = (0..senders)
            .map(|sender| {
                tokio::spawn(send_load(
                    address,
                    tenant.key.clone(),
                    tenant.subsystem_code.clone(),
                    properties.clone(),
                    sender,
                    Arc::clone(&tally),
                ))
            })
            .collect();
        Load { tally, senders }
    }

    /// Waits until `events` more events have been acknowledged than now.
    async fn acknowledges(&self, events: usize) {
        let target = self.tally.acknowledged() + events;
        wait_until(&format!("{target} events are acknowledged"), || async {
            self.tally.acknowledged() >= target
        })
        .await;
    }

    async fn stop(self) -> Arc<Tally> {
        self.tally.stop.store(true, Ordering::Relaxed);
        for sender in self.senders {
            sender.await.expect("a load sender panicked");
        }
        self.tally
    }
}

async fn send_load(
    address: SocketAddr,
    key: String,
    subsystem: String,
    properties: Value,
    sender: usize,
    tally: Arc<Tally>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut request_number = 0usize;
    while !tally.stop.load(Ordering::Relaxed) {
        request_number += 1;
        let single = sender % 2 == 1;
        let (path, body, ids) = if single {
            let event = json!({"eventType": "drill", "userId": format!("u{sender}"), "subsystem": subsystem, "properties": properties});
            ("/api/v1/events", event, Vec::new())
        } else {
            let ids: Vec<String> = (0..BATCH_EVENTS)
                .map(|i| format!("d{sender}-{request_number}-{i}"))
                .collect();
            let events: Vec<Value> = ids
                .iter()
                .map(|id| json!({"eventType": "drill", "eventId": id, "userId": format!("u{sender}"), "subsystem": subsystem, "properties": properties}))
                .collect();
            ("/api/v1/events/batch", json!({ "events": events }), ids)
        };
        let sent = client
            .post(format!("http://{address}{path}"))
            .header("x-api-key", &key)
            .json(&body)
            .send()
            .await;
        let Ok(response) = sent else {
            tally.unanswered.fetch_add(1, Ordering::Relaxed);
            // The service is down or restarting: don't spin on refused connections.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let status = response.status();
        *tally
            .statuses
            .lock()
            .unwrap()
            .entry(status.as_u16())
            .or_default() += 1;
        if status != StatusCode::ACCEPTED {
            // Back off briefly, as a client honouring Retry-After would (shortened).
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let ids = if single {
            match response.json::<Value>().await {
                Ok(answer) => vec![answer["eventId"].as_str().unwrap().to_string()],
                Err(_) => {
                    tally.unanswered.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        } else {
            ids
        };
        tally
            .acknowledged_count
            .fetch_add(ids.len(), Ordering::Relaxed);
        tally.acknowledged.lock().unwrap().extend(ids);
    }
}

/// Polls `condition` until it holds, failing with `what` after `PHASE_TIMEOUT`.
async fn wait_until<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    helpers::wait_until(what, PHASE_TIMEOUT, condition).await;
}

/// Every acknowledged event is stored, and no stored event more than once.
async fn assert_stored_exactly_once(app: &TestApp, tenant: &Tenant, tally: &Tally) {
    let query = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&limit=1000";
    let mut stored = HashSet::new();
    for event in app.all_events(&tenant.key, query).await {
        let id = event["eventId"].as_str().unwrap().to_string();
        assert!(stored.insert(id.clone()), "event {id} is stored twice");
    }
    let acknowledged = tally.acknowledged.lock().unwrap();
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events are not stored, e.g. {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!(
        "{} events acknowledged, {} stored (the rest had no answer), answers {:?}, {} unanswered requests",
        acknowledged.len(),
        stored.len(),
        tally.statuses(),
        tally.unanswered.load(Ordering::Relaxed)
    );
}

/// `volcanion rollups verify` on a stopped service's data dir: the rollups equal a recount
/// of the raw events, whatever was cut short.
fn assert_rollups_agree(data_dir: &std::path::Path) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_volcanion"))
        .args(["rollups", "verify"])
        .env_clear()
        .env("VOLCANION_DATA_DIR", data_dir)
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("rollups agree"),
        "rollups verify: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn tenant_of(process: &Process) -> Tenant {
    process.app.tenant("drill").await
}

/// A service on a fresh data dir with 4 senders loading it, once 3,000 events are in.
async fn service_under_load(backend: Backend) -> (tempfile::TempDir, Process, Tenant, Load) {
    let data_dir = tempfile::TempDir::new().unwrap();
    let service = start(data_dir.path(), backend, &[]).await;
    let tenant = tenant_of(&service).await;
    let load = Load::start(service.app.address, &tenant, 4, json!({"n": 1}));
    load.acknowledges(3_000).await;
    (data_dir, service, tenant, load)
}

/// A second service on the stopped one's data dir holds every acknowledged event once.
async fn restart_holds_every_acknowledged_event(
    data_dir: &std::path::Path,
    backend: Backend,
    tenant: &Tenant,
    tally: &Tally,
) {
    let second = start(data_dir, backend, &[]).await;
    assert_stored_exactly_once(&second.app, tenant, tally).await;
    terminate(second).await;
}

/// SIGKILL mid-load: nothing runs at exit, so only what was durable before each 202 counts.
async fn a_killed_service_keeps_every_acknowledged_event(backend: Backend) {
    let _turn = one_at_a_time().await;
    let (data_dir, first, tenant, load) = service_under_load(backend).await;
    first.kill().await;
    let tally = load.stop().await;
    tally.assert_only(&[202]);
    if backend == Backend::Embedded {
        assert_rollups_agree(data_dir.path());
    }
    restart_holds_every_acknowledged_event(data_dir.path(), backend, &tenant, &tally).await;
}

/// SIGTERM mid-load: the senders keep going while it drains; it exits cleanly.
async fn a_stopped_service_keeps_every_acknowledged_event(backend: Backend) {
    let _turn = one_at_a_time().await;
    let (data_dir, first, tenant, load) = service_under_load(backend).await;
    terminate(first).await;
    let tally = load.stop().await;
    // A request that arrives while it drains may be refused (503, shutting down).
    tally.assert_only(&[202, 503]);
    restart_holds_every_acknowledged_event(data_dir.path(), backend, &tenant, &tally).await;
}

crate::backend_tests!(
    a_killed_service_keeps_every_acknowledged_event,
    a_stopped_service_keeps_every_acknowledged_event,
);

/// Redis killed mid-load and started again: local limits take over, never a 401 or 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: VOLCANION_TEST_REDIS_URL and --include-ignored"]
async fn losing_redis_mid_load_refuses_nothing() {
    assert!(
        std::env::var("VOLCANION_TEST_REDIS_URL").is_ok(),
        "the Redis drill runs with the Redis suite: set VOLCANION_TEST_REDIS_URL"
    );
    let _turn = one_at_a_time().await;
    let redis = OwnRedis::start(free_port()).await;
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let app = TestAppBuilder::new(Backend::Embedded)
        .with_redis(&url, "drill")
        .spawn()
        .await;
    let tenant = app.tenant("drill").await;
    let load = Load::start(app.address, &tenant, 4, json!({"n": 1}));
    load.acknowledges(1_000).await;
    let port = redis.kill().await;
    load.acknowledges(1_000).await;
    assert_eq!(app.health().await["components"]["redis"]["status"], "down");
    let _restarted = OwnRedis::start(port).await;
    wait_until("the service is back on Redis", || async {
        app.health().await["status"] == "up"
    })
    .await;
    load.acknowledges(500).await;
    let tally = load.stop().await;
    tally.assert_only(&[202, 429, 503]);
    assert_stored_exactly_once(&app, &tenant, &tally).await;
}

/// Far more load than it can store (160 closed-loop senders, whose requests hold up to
/// 4,000 events against a queue of 2,000, so the excess is refused): only
/// 202, 429 or 503; memory stays within the configured budgets; health and reads are
/// answered throughout; every 202 is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_refused_in_bounded_memory() {
    let _turn = one_at_a_time().await;
    let data_dir = tempfile::TempDir::new().unwrap();
    const QUEUE_BYTES: u64 = 8 << 20;
    const BODY_BYTES: u64 = 8 << 20;
    const STORE_CACHE_BYTES: u64 = 16 << 20;
    let settings = [
        ("VOLCANION_STORE__CACHE_SIZE", "16MiB"),
        ("VOLCANION_INGEST__QUEUE_CAPACITY", "2000"),
        ("VOLCANION_INGEST__QUEUE_MAX_BYTES", "8MiB"),
        ("VOLCANION_HTTP__MAX_BODY_BYTES_IN_FLIGHT", "8MiB"),
    ];
    let process = start(data_dir.path(), Backend::Embedded, &settings).await;
    let tenant = tenant_of(&process).await;
    let baseline = process.resident_bytes();
    let pid = process.pid();
    let peak = Arc::new(AtomicUsize::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (peak, sampling) = (Arc::clone(&peak), Arc::clone(&sampling));
        async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(bytes) = resident_bytes_of(pid) {
                    peak.fetch_max(bytes as usize, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let blob = "x".repeat(1_000);
    let load = Load::start(process.app.address, &tenant, 160, json!({"blob": blob}));
    load.acknowledges(5_000).await;
    wait_until("the excess is refused with 503", || async {
        load.tally.statuses().contains_key(&503)
    })
    .await;
    for _ in 0..5 {
        let live = process.app.get("/health/live").await;
        assert_eq!(live.status(), StatusCode::OK, "alive under overload");
        let read = process.app.get_events(&tenant.key, "limit=10").await;
        assert_eq!(
            read.status(),
            StatusCode::OK,
            "reads are served under overload"
        );
    }
    let tally = load.stop().await;
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    tally.assert_only(&[202, 429, 503]);
    let growth =
        peak.load(Ordering::Relaxed) as u64 - baseline.min(peak.load(Ordering::Relaxed) as u64);
    // The queue and body budgets, twice over for allocator slack, the store's page cache,
    // and 48 MiB for the runtime, connections and other caches.
    let bound = 2 * (QUEUE_BYTES + BODY_BYTES) + STORE_CACHE_BYTES + (48 << 20);
    eprintln!(
        "overload: resident memory grew {} MiB (bound {} MiB)",
        growth >> 20,
        bound >> 20
    );
    assert!(
        growth <= bound,
        "resident memory grew {growth} bytes under overload, over {bound}"
    );
    assert_stored_exactly_once(&process.app, &tenant, &tally).await;
    terminate(process).await;
}

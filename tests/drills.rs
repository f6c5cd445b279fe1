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
#[path = "api/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "api/own_redis.rs"]
mod own_redis;
#[allow(dead_code)]
#[path = "api/process.rs"]
mod process;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use helpers::{Backend, Tenant, TestAppBuilder};
use load::{Load, ResendingLoad, Tally, assert_stored_exactly_once, assert_stored_exactly_once_in};
use own_redis::{OwnRedis, free_port};
use process::{Process, resident_bytes_of, start, terminate};
use reqwest::StatusCode;
use serde_json::json;

/// How long any phase may take before the drill fails (a hang guard, not a measurement).
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Drills share two cores: one at a time keeps each one's load what it says.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// Polls `condition` until it holds, failing with `what` after `PHASE_TIMEOUT`.
async fn wait_until<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    helpers::wait_until(what, PHASE_TIMEOUT, condition).await;
}

/// `volcanion rollups verify` on a stopped service's store: the rollups equal a recount
/// of the raw events, whatever was cut short.
fn assert_rollups_agree(data_dir: &std::path::Path, backend: Backend) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_volcanion"))
        .args(["rollups", "verify"])
        .env_clear()
        .env("VOLCANION_DATA_DIR", data_dir)
        .envs(backend.environment())
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
    let load = Load::start(&[service.app.address], &tenant, 4, json!({"n": 1}));
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
        assert_rollups_agree(data_dir.path(), backend);
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

/// The last day and the next hour: every event a drill sends, as a report's range.
fn recent_range() -> String {
    let now = chrono::Utc::now();
    let format = |time: chrono::DateTime<chrono::Utc>| {
        time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    format!(
        "from={}&to={}",
        format(now - chrono::Duration::days(1)),
        format(now + chrono::Duration::hours(1))
    )
}

/// How often the resend drill kills the service.
const RESEND_DRILL_KILLS: usize = 3;

/// Clients that choose their own event ids resend every request not answered 2xx (as
/// Segment's libraries do) while the service is killed (SIGKILL) mid-load and started
/// again, three times. Every id that ever got a 2xx is stored exactly once, in both events
/// tables (the listing by partner and by subsystem), the summary counts each once, and the
/// rollups agree with a recount. A claim left without rows by a kill must not make a
/// resend look like a duplicate.
async fn resent_events_are_stored_once_across_kills(backend: Backend) {
    let _turn = one_at_a_time().await;
    let data_dir = tempfile::TempDir::new().unwrap();
    let mut service = start(data_dir.path(), backend, &[]).await;
    let address = service.app.address.to_string();
    let tenant = tenant_of(&service).await;
    let pinned = service
        .app
        .create_key(
            &tenant.partner_id,
            json!({"scopes": ["ingest"], "subsystemId": tenant.subsystem_id}),
        )
        .await;
    let segment_key = pinned["key"].as_str().unwrap();
    let load = ResendingLoad::start(service.app.address, &tenant, segment_key, 6);
    for _ in 0..RESEND_DRILL_KILLS {
        load.acknowledges(600).await;
        service.kill().await;
        service = start(data_dir.path(), backend, &[("VOLCANION_LISTEN", &address)]).await;
    }
    load.acknowledges(600).await;
    let tally = load.stop().await;
    let resends = tally.resends.load(Ordering::Relaxed);
    assert!(resends > 0, "the kills made clients send again");
    let stored = assert_stored_exactly_once(&service.app, &tenant, &tally).await;
    let by_subsystem = format!("&subsystemId={}", tenant.subsystem_id);
    assert_stored_exactly_once_in(&service.app, &tenant, &tally, &by_subsystem).await;
    let summary = service.app.summary(&tenant.key, &recent_range()).await;
    assert_eq!(summary["totalEvents"], stored, "{summary}");
    terminate(service).await;
    assert_rollups_agree(data_dir.path(), backend);
    eprintln!(
        "resend drill ({backend:?}): {} acknowledged, {stored} stored, {resends} resends, {RESEND_DRILL_KILLS} kills",
        tally.acknowledged()
    );
}

crate::backend_tests!(
    a_killed_service_keeps_every_acknowledged_event,
    a_stopped_service_keeps_every_acknowledged_event,
    resent_events_are_stored_once_across_kills,
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
    let load = Load::start(&[app.address], &tenant, 4, json!({"n": 1}));
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
        // Freed memory goes back to the OS at once, so resident memory is what is in use
        // rather than what the allocator kept for later (its default delay made the peak
        // vary by more than 10 MiB from run to run on a loaded machine).
        ("MIMALLOC_PURGE_DELAY", "0"),
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
    let load = Load::start(&[process.app.address], &tenant, 160, json!({"blob": blob}));
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

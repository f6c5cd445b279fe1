//! Cassandra outages under load, with a steady ingest load running:
//! - the JVM frozen (SIGSTOP, via `scripts/cassandra.sh pause`), so every store request
//!   hangs: ingestion answers 503 with `Retry-After`, `/health` reports the store down,
//!   and after the JVM resumes every event that got a 202 is stored;
//! - the JVM killed (SIGKILL, `scripts/cassandra.sh kill`) for 30 s, then started again on
//!   its data: only 503s meanwhile, ingestion resumes by itself, nothing acknowledged lost.
//!
//! A separate test binary, so stopping Cassandra can't disturb the parallel API suite; the
//! two outages take turns.
//! Ignored like the Cassandra API suite unless run with `--include-ignored`, and then it needs
//! `VOLCANION_TEST_CASSANDRA_NODES=127.0.0.1:<port>` (the script's local node; the test pauses
//! the JVM of `scripts/cassandra.sh` with the same `CASSANDRA_STATE_DIR`).

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use helpers::{Backend, KeyspaceCleanup, TestApp, TestAppBuilder};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cassandra.sh");
const QUEUE_CAPACITY: usize = 3_000;
const EVENTS_PER_REQUEST: usize = 50;
const SENDERS: usize = 4;
const PHASE_TIMEOUT: Duration = Duration::from_secs(45);
/// How long the killed node stays down, load running.
const KILLED_FOR: Duration = Duration::from_secs(30);

/// The outages stop the one local node: one at a time.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// Kills the local Cassandra JVM; starts it again when dropped unless already started,
/// so a failing test can't leave it down for the next run.
struct KilledCassandra {
    started: bool,
}

impl KilledCassandra {
    fn kill() -> KilledCassandra {
        run_script("kill");
        KilledCassandra { started: false }
    }

    fn start(&mut self) {
        run_script("start");
        self.started = true;
    }
}

impl Drop for KilledCassandra {
    fn drop(&mut self) {
        if !self.started {
            run_script("start");
        }
    }
}

/// Freezes the local Cassandra JVM; thaws it when dropped, so a failing test can't leave
/// it paused for the next run.
struct PausedCassandra {
    resumed: bool,
}

impl PausedCassandra {
    fn pause() -> PausedCassandra {
        run_script("pause");
        PausedCassandra { resumed: false }
    }

    fn resume(&mut self) {
        run_script("resume");
        self.resumed = true;
    }
}

impl Drop for PausedCassandra {
    fn drop(&mut self) {
        if !self.resumed {
            run_script("resume");
        }
    }
}

fn run_script(command: &str) {
    let status = Command::new(SCRIPT)
        .arg(command)
        .status()
        .unwrap_or_else(|error| panic!("cannot run {SCRIPT} {command}: {error}"));
    assert!(status.success(), "{SCRIPT} {command} failed: {status}");
}

/// What the load generator saw.
#[derive(Default)]
struct LoadReport {
    accepted_ids: Mutex<HashSet<String>>,
    accepted: AtomicUsize,
    refused_with_retry_after: AtomicUsize,
    refused_without_retry_after: AtomicUsize,
    /// The distinct `detail`s of the 503 answers.
    refusal_details: Mutex<HashSet<String>>,
    /// Set while the node is known to be down (killed, not yet restarting).
    node_down: AtomicBool,
    /// Events answered 202 for a request sent and answered while the node was down.
    accepted_while_down: AtomicUsize,
    stop: AtomicBool,
}

async fn send_load(
    app: Arc<TestApp>,
    key: String,
    subsystem: String,
    sender: usize,
    report: Arc<LoadReport>,
) {
    let mut request_number = 0usize;
    while !report.stop.load(Ordering::Relaxed) {
        request_number += 1;
        let ids: Vec<String> = (0..EVENTS_PER_REQUEST)
            .map(|i| format!("outage-{sender}-{request_number}-{i}"))
            .collect();
        let events: Vec<Value> = ids
            .iter()
            .map(|id| json!({"eventType": "load", "eventId": id, "userId": "u", "subsystem": subsystem}))
            .collect();
        let sent_while_down = report.node_down.load(Ordering::SeqCst);
        let sent = app
            .client
            .post(app.url("/api/v1/events/batch"))
            .header("x-api-key", &key)
            .json(&json!({ "events": events }))
            // Longer than `ingest.ack_timeout`: a stuck store is answered by the service.
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let Ok(response) = sent else {
            continue;
        };
        match response.status() {
            StatusCode::ACCEPTED => {
                if sent_while_down && report.node_down.load(Ordering::SeqCst) {
                    report
                        .accepted_while_down
                        .fetch_add(ids.len(), Ordering::Relaxed);
                }
                report.accepted.fetch_add(ids.len(), Ordering::Relaxed);
                report.accepted_ids.lock().unwrap().extend(ids);
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                let counter = if response.headers().contains_key("retry-after") {
                    &report.refused_with_retry_after
                } else {
                    &report.refused_without_retry_after
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let problem: Value = response.json().await.unwrap_or_default();
                if let Some(detail) = problem["detail"].as_str() {
                    report
                        .refusal_details
                        .lock()
                        .unwrap()
                        .insert(detail.to_string());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected ingest status {other}"),
        }
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

async fn store_health(app: &TestApp) -> (StatusCode, String) {
    let Ok(response) = app
        .client
        .get(app.url("/health"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
    else {
        return (StatusCode::REQUEST_TIMEOUT, String::new());
    };
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    let store = body["components"]["store"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, store)
}

/// An app on the local node with a tenant, and `SENDERS` load senders running.
struct Outage {
    app: Arc<TestApp>,
    tenant: helpers::Tenant,
    report: Arc<LoadReport>,
    senders: Vec<tokio::task::JoinHandle<()>>,
}

impl Outage {
    async fn start(backend: Backend) -> Outage {
        let app = TestAppBuilder::new(backend)
            .configure(|config| {
                assert!(
                    config
                        .cassandra
                        .nodes
                        .iter()
                        .all(|node| node.starts_with("127.0.0.1:")),
                    "the outage tests stop the local node only, got {:?}",
                    config.cassandra.nodes
                );
                config.ingest.queue_capacity = QUEUE_CAPACITY;
                config.ingest.batch_size = 200;
                config.cassandra.request_timeout = Duration::from_secs(1);
                // Keys and tenants stay cached, so only the writers meet the stopped store
                // and the 503s come from the write path.
                config.auth.key_cache_ttl = Duration::from_secs(600);
                config.limits.directory_cache_ttl = Duration::from_secs(600);
                // The load runs for over a minute: quotas are not what this tests.
                config.limits.default_rate_limit_per_minute = 100_000_000;
                config.limits.key_rate_limit_per_minute = 100_000_000;
            })
            .spawn()
            .await;
        let app = Arc::new(app);
        let tenant = app.tenant("outage").await;
        let report = Arc::new(LoadReport::default());
        let senders = (0..SENDERS)
            .map(|sender| {
                tokio::spawn(send_load(
                    Arc::clone(&app),
                    tenant.key.clone(),
                    tenant.subsystem_code.clone(),
                    sender,
                    Arc::clone(&report),
                ))
            })
            .collect();
        let outage = Outage {
            app,
            tenant,
            report,
            senders,
        };
        outage.accepts(2_000, "the load is flowing").await;
        outage
    }

    fn accepted(&self) -> usize {
        self.report.accepted.load(Ordering::Relaxed)
    }

    async fn accepts(&self, events: usize, what: &str) {
        let target = self.accepted() + events;
        wait_until(what, || async { self.accepted() >= target }).await;
    }

    async fn store_down_answers_503(&self) {
        wait_until("ingestion answers 503 with Retry-After", || async {
            self.report.refused_with_retry_after.load(Ordering::Relaxed) > 0
        })
        .await;
        wait_until("/health reports the store down", || async {
            let (status, store) = store_health(&self.app).await;
            status == StatusCode::SERVICE_UNAVAILABLE && store == "down"
        })
        .await;
    }

    /// After the node is back: ingestion and health recover by themselves, then the
    /// load stops and every event answered 202 must be stored.
    async fn recovers_with_nothing_lost(self) -> HashSet<String> {
        self.accepts(1_000, "ingestion accepts again").await;
        wait_until("/health reports the store up", || async {
            store_health(&self.app).await == (StatusCode::OK, "up".to_string())
        })
        .await;
        self.report.stop.store(true, Ordering::Relaxed);
        for sender in self.senders {
            sender.await.expect("a load sender panicked");
        }
        let accepted: HashSet<String> = self.report.accepted_ids.lock().unwrap().clone();
        let window = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&limit=1000";
        let query = format!("partnerId={}&{window}", self.tenant.partner_id);
        let deadline = Instant::now() + PHASE_TIMEOUT;
        loop {
            let stored: HashSet<String> = self
                .app
                .all_events(&self.tenant.key, &query)
                .await
                .iter()
                .map(|event| event["eventId"].as_str().unwrap().to_string())
                .collect();
            let missing = accepted.difference(&stored).count();
            if missing == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{missing} of {} events answered with 202 were never stored",
                accepted.len()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(
            self.report
                .refused_without_retry_after
                .load(Ordering::Relaxed),
            0,
            "every 503 carries Retry-After"
        );
        accepted
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn accepted_events_survive_a_cassandra_pause() {
    let _turn = one_at_a_time().await;
    let backend = Backend::cassandra_from_env("accepted_events_survive_a_cassandra_pause");
    let _cleanup = KeyspaceCleanup::new(backend);
    let outage = Outage::start(backend).await;
    let mut paused = PausedCassandra::pause();
    let accepted_before_pause = outage.accepted();
    outage.store_down_answers_503().await;
    let accepted_while_paused = outage.accepted() - accepted_before_pause;
    assert!(
        accepted_while_paused <= QUEUE_CAPACITY + EVENTS_PER_REQUEST * SENDERS,
        "accepted {accepted_while_paused} events while the store was frozen: more than the queue holds"
    );
    paused.resume();
    let refused = outage
        .report
        .refused_with_retry_after
        .load(Ordering::Relaxed);
    let details = outage.report.refusal_details.lock().unwrap().clone();
    let accepted = outage.recovers_with_nothing_lost().await;
    eprintln!(
        "pause: {} events accepted ({accepted_while_paused} while frozen), {refused} requests refused with 503 + Retry-After ({details:?}), all stored",
        accepted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn accepted_events_survive_a_killed_cassandra() {
    let _turn = one_at_a_time().await;
    let backend = Backend::cassandra_from_env("accepted_events_survive_a_killed_cassandra");
    let _cleanup = KeyspaceCleanup::new(backend);
    let outage = Outage::start(backend).await;
    let mut killed = KilledCassandra::kill();
    outage.report.node_down.store(true, Ordering::SeqCst);
    outage.store_down_answers_503().await;
    // The node stays down, load running; `send_load` fails on any status but 202 and 503.
    tokio::time::sleep(KILLED_FOR).await;
    outage.report.node_down.store(false, Ordering::SeqCst);
    let accepted_while_down = outage.report.accepted_while_down.load(Ordering::Relaxed);
    let refused = outage
        .report
        .refused_with_retry_after
        .load(Ordering::Relaxed);
    killed.start();
    let accepted = outage.recovers_with_nothing_lost().await;
    assert_eq!(
        accepted_while_down, 0,
        "a 202 was sent while no replica could store it"
    );
    eprintln!(
        "kill: {} events accepted, {refused} requests refused with 503 + Retry-After while down for {KILLED_FOR:?}, all stored",
        accepted.len()
    );
}

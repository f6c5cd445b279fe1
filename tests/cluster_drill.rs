//! The scale-out drill: three `volcanion` processes started at the same moment on a new
//! keyspace of the 3-node cluster of `scripts/cluster.sh` (RF 3, LOCAL_QUORUM), sharing one
//! Redis, loaded through all three. Mid-load one Cassandra node is stopped
//! (`scripts/cluster.sh stop-node 2`), the load keeps going for 30 s, and the node starts
//! again. Checks: every instance came up; no acknowledged event lost and none stored twice;
//! only 202 and 503 (with `Retry-After`) answered, and events still acknowledged while the
//! node was down; the reports equal on every instance and equal to a recount; a partner's
//! rate limit of N per minute admits exactly N across the three; a key revoked through
//! one instance is refused by the others within a second.
//!
//! Ignored unless run with `--include-ignored`, and then it needs
//! `VOLCANION_TEST_CASSANDRA_CLUSTER` (`scripts/cluster.sh nodes` prints it) and fails
//! without it. The script acts on the cluster its `CLUSTER_*` variables name (inherited).

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

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use helpers::{ADMIN_TOKEN, Backend, KeyspaceCleanup, Tenant, TestApp};
use load::{Load, Tally, assert_stored_exactly_once};
use own_redis::{OwnRedis, free_port};
use process::{Process, start, terminate};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster.sh");
const INSTANCES: usize = 3;
const SENDERS: usize = 6;
/// ~300 events/s in batches of 50: steady load that leaves the 2-core machine room to stop
/// and start a node beside three JVMs and three instances.
const SENDER_PAUSE: Duration = Duration::from_millis(500);
const STOPPED_NODE: &str = "2";
/// How long the node stays down, load running.
const DOWN_FOR: Duration = Duration::from_secs(30);
/// The whole drill, cluster changes included (a hang guard; 70-90 s of it is the node's
/// restart on an idle machine, but it took 267 s with the machine busy with other builds,
/// the restarted node needing 96 s to answer CQL).
const DRILL_TIMEOUT: Duration = Duration::from_secs(360);
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);
/// The limited partner's `rateLimitPerMinute`: GCRA frees one more every 60 s / N, so the
/// burst must finish within that for "exactly N" to hold.
const PARTNER_LIMIT: usize = 10;
const REVOCATION_BOUND: Duration = Duration::from_secs(1);

/// Runs `scripts/cluster.sh` with `arguments`, failing the drill if it fails.
async fn cluster(arguments: &[&str]) -> Duration {
    let started = Instant::now();
    let status = tokio::process::Command::new(SCRIPT)
        .args(arguments)
        .status()
        .await
        .unwrap_or_else(|error| panic!("cannot run {SCRIPT}: {error}"));
    assert!(status.success(), "{SCRIPT} {arguments:?} failed: {status}");
    started.elapsed()
}

/// A stopped node, started again when dropped unless already started, so a failing
/// drill can't leave the cluster a node short.
struct StoppedNode {
    started: bool,
}

impl StoppedNode {
    async fn stop() -> (StoppedNode, Duration) {
        let took = cluster(&["stop-node", STOPPED_NODE]).await;
        (StoppedNode { started: false }, took)
    }

    async fn start(&mut self) -> Duration {
        let took = cluster(&["start-node", STOPPED_NODE]).await;
        self.started = true;
        took
    }
}

impl Drop for StoppedNode {
    fn drop(&mut self) {
        if !self.started {
            let _ = std::process::Command::new(SCRIPT)
                .args(["start-node", STOPPED_NODE])
                .status();
        }
    }
}

/// The three instances, started at once on the fresh keyspace (all of them migrate it).
async fn start_instances(
    backend: Backend,
    redis_url: &str,
) -> (Vec<tempfile::TempDir>, Vec<Process>) {
    let data_dirs: Vec<_> = (0..INSTANCES)
        .map(|_| tempfile::TempDir::new().unwrap())
        .collect();
    let settings = [
        ("VOLCANION_REDIS__URL", redis_url),
        ("VOLCANION_REDIS__KEY_PREFIX", "cluster-drill"),
        // Only the limited partner's own rateLimitPerMinute is what this drill limits.
        (
            "VOLCANION_LIMITS__DEFAULT_RATE_LIMIT_PER_MINUTE",
            "100000000",
        ),
        ("VOLCANION_LIMITS__KEY_RATE_LIMIT_PER_MINUTE", "100000000"),
    ];
    let started = Instant::now();
    let (first, second, third) = tokio::join!(
        start(data_dirs[0].path(), backend, &settings),
        start(data_dirs[1].path(), backend, &settings),
        start(data_dirs[2].path(), backend, &settings),
    );
    eprintln!(
        "cluster drill: {INSTANCES} instances started together on a new keyspace, all serving after {:.1?}",
        started.elapsed()
    );
    (data_dirs, vec![first, second, third])
}

/// Answers counted per status between two snapshots of the tally.
fn answers_since(
    before: &std::collections::BTreeMap<u16, usize>,
    tally: &Tally,
) -> std::collections::BTreeMap<u16, usize> {
    tally
        .statuses()
        .into_iter()
        .map(|(status, count)| (status, count - before.get(&status).copied().unwrap_or(0)))
        .filter(|(_, count)| *count > 0)
        .collect()
}

/// A partner created with a limit of `PARTNER_LIMIT` events a minute, a subsystem and a key.
async fn limited_tenant(app: &TestApp) -> Tenant {
    let body = json!({"code": "limited", "name": "Limited", "rateLimitPerMinute": PARTNER_LIMIT});
    let response = app.post_partner(&body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let partner: Value = response.json().await.unwrap();
    let partner_id = partner["id"].as_str().unwrap().to_string();
    let subsystem = app.create_subsystem(&partner_id, "limited-web").await;
    let key = app
        .create_key(&partner_id, json!({"scopes": ["ingest", "read"]}))
        .await;
    Tenant {
        partner_id,
        subsystem_id: subsystem["id"].as_str().unwrap().to_string(),
        subsystem_code: "limited-web".to_string(),
        key: key["key"].as_str().unwrap().to_string(),
    }
}

/// A partner limited to `PARTNER_LIMIT` events a minute: a burst of three times that,
/// spread over all instances at once, is admitted exactly `PARTNER_LIMIT` times.
async fn shared_rate_limit_is_exact(instances: &[&TestApp]) {
    // The limit is set as the partner is created: a PATCH would reach the other
    // instances' caches through Redis a moment later, and a request admitted under the
    // old limit in that moment resets the shared budget (CI saw 11 admitted of 10).
    let limited = limited_tenant(instances[0]).await;
    let started = Instant::now();
    let requests: Vec<_> = (0..3 * PARTNER_LIMIT)
        .map(|request| {
            let app = TestApp::attach(instances[request % instances.len()].address);
            let (key, subsystem) = (limited.key.clone(), limited.subsystem_code.clone());
            tokio::spawn(async move {
                let event = json!({"eventType": "limited", "userId": "u", "subsystem": subsystem});
                app.send_event(&key, &event).await.status()
            })
        })
        .collect();
    let mut admitted = 0;
    let mut limited_answers = 0;
    for request in requests {
        match request.await.unwrap() {
            StatusCode::ACCEPTED => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => limited_answers += 1,
            other => panic!("a rate-limited burst answered {other}"),
        }
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(60) / PARTNER_LIMIT as u32,
        "the burst took {took:?}: too long for the limit to be exact"
    );
    assert_eq!(
        (admitted, limited_answers),
        (PARTNER_LIMIT, 2 * PARTNER_LIMIT),
        "a limit of {PARTNER_LIMIT}/min across {} instances admitted {admitted}",
        instances.len()
    );
    eprintln!(
        "cluster drill: rate limit {PARTNER_LIMIT}/min, burst of {} over {} instances in {took:.1?}: {admitted} admitted, {limited_answers} answered 429",
        3 * PARTNER_LIMIT,
        instances.len()
    );
}

/// A key every instance has cached is revoked through the first; the others refuse it
/// within `REVOCATION_BOUND` of its `DELETE` being answered. Returns the slowest
/// instance's delay.
async fn revocation_reaches_every_instance(instances: &[&TestApp], tenant: &Tenant) -> Duration {
    let created = instances[0]
        .create_key(&tenant.partner_id, json!({"scopes": ["read"]}))
        .await;
    let (key_id, key) = (
        created["id"].as_str().unwrap().to_string(),
        created["key"].as_str().unwrap().to_string(),
    );
    for app in instances {
        let read = app.get_events(&key, "limit=1").await;
        assert_eq!(read.status(), StatusCode::OK, "the key works everywhere");
    }
    let revoked = instances[0].revoke_key(&key_id).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let revoked_at = Instant::now();
    // Authentication comes before the query is read, so a bad `limit` answers 400 for a
    // valid key without touching Cassandra: what is timed is the revocation, not a read.
    let mut slowest = Duration::ZERO;
    for app in &instances[1..] {
        loop {
            let status = app.get_events(&key, "limit=not-a-number").await.status();
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(
                revoked_at.elapsed() <= REVOCATION_BOUND,
                "instance {} still accepts a key revoked {:?} ago",
                app.address,
                revoked_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        slowest = slowest.max(revoked_at.elapsed());
    }
    assert!(slowest <= REVOCATION_BOUND, "revocation took {slowest:?}");
    slowest
}

/// The summary every instance gives equals the others' and a recount of the stored events.
async fn reports_agree(
    instances: &[&TestApp],
    tenant: &Tenant,
    stored: usize,
    from: DateTime<Utc>,
) {
    let to = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() + TimeDelta::hours(1);
    let query = format!(
        "partnerId={}&from={}&to={}",
        tenant.partner_id,
        from.to_rfc3339_opts(SecondsFormat::Secs, true),
        to.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    let expected = json!({ "totalEvents": stored, "eventCounts": { "drill": stored } });
    let counts = |summary: &Value| json!({ "totalEvents": summary["totalEvents"], "eventCounts": summary["eventCounts"] });
    // Reports reaching into the current hour are cached for `reports.cache_ttl` (1 s).
    let deadline = Instant::now() + PHASE_TIMEOUT;
    let summaries = loop {
        let mut summaries = Vec::new();
        for app in instances {
            summaries.push(app.summary(&tenant.key, &query).await);
        }
        if summaries.iter().all(|summary| counts(summary) == expected) {
            break summaries;
        }
        let seen: Vec<Value> = summaries.iter().map(counts).collect();
        assert!(
            Instant::now() < deadline,
            "the instances report {seen:?}, the recount {expected}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let comparable = |summary: &Value| {
        let mut summary = summary.clone();
        summary.as_object_mut().unwrap().remove("dataAsOf");
        summary
    };
    for summary in &summaries[1..] {
        assert_eq!(
            comparable(summary),
            comparable(&summaries[0]),
            "the instances' reports differ"
        );
    }
    assert_eq!(summaries[0]["uniqueUsers"], SENDERS, "one user per sender");
}

/// `volcanion rollups verify` on the cluster keyspace: the rollups equal a recount.
fn rollups_verify(backend: Backend, tenant: &Tenant, from: DateTime<Utc>) {
    let data_dir = tempfile::TempDir::new().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_volcanion"))
        .args(["rollups", "verify", "--partner", &tenant.partner_id])
        .args(["--from", &from.to_rfc3339_opts(SecondsFormat::Secs, true)])
        .env_clear()
        .envs(backend.environment())
        .env("VOLCANION_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("VOLCANION_DATA_DIR", data_dir.path())
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

async fn all_ready(instances: &[&TestApp]) -> bool {
    for app in instances {
        if app.get("/health/ready").await.status() != StatusCode::OK {
            return false;
        }
    }
    true
}

async fn drill(backend: Backend) {
    let drill_started = Instant::now();
    let from = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::hours(1);
    let redis = OwnRedis::start(free_port()).await;
    let redis_url = format!("redis://127.0.0.1:{}", redis.port);
    let (_data_dirs, processes) = start_instances(backend, &redis_url).await;
    let instances: Vec<&TestApp> = processes.iter().map(|process| &process.app).collect();
    let addresses: Vec<SocketAddr> = instances.iter().map(|app| app.address).collect();
    let tenant = instances[0].tenant("drill").await;

    let load = Load::paced(&addresses, &tenant, SENDERS, json!({"n": 1}), SENDER_PAUSE);
    load.acknowledges(2_000).await;
    let before_stop = load.tally.statuses();
    let acknowledged_before_stop = load.tally.acknowledged();
    let (mut stopped, stop_took) = StoppedNode::stop().await;
    let down_since = Instant::now();
    let during_stop = answers_since(&before_stop, &load.tally);

    let before_down = load.tally.statuses();
    let acknowledged_before_down = load.tally.acknowledged();
    shared_rate_limit_is_exact(&instances).await;
    let revocation = revocation_reaches_every_instance(&instances, &tenant).await;
    assert!(
        all_ready(&instances).await,
        "an instance is not ready with one node of three down"
    );
    tokio::time::sleep(DOWN_FOR.saturating_sub(down_since.elapsed())).await;
    let acknowledged_while_down = load.tally.acknowledged() - acknowledged_before_down;
    let while_down = answers_since(&before_down, &load.tally);
    assert!(
        acknowledged_while_down > 0,
        "nothing was acknowledged while one node of three was down (answers {while_down:?})"
    );

    let down_for = down_since.elapsed();
    let before_start = load.tally.statuses();
    let start_took = stopped.start().await;
    let during_start = answers_since(&before_start, &load.tally);
    let before_recovery = load.tally.statuses();
    load.acknowledges(2_000).await;
    let tally = load.stop().await;
    let after_start = answers_since(&before_recovery, &tally);

    eprintln!(
        "cluster drill: {acknowledged_before_stop} events acknowledged before the stop; \
         stop-node took {stop_took:.1?} (answers meanwhile {during_stop:?}); \
         node down {:.1?}: {acknowledged_while_down} events acknowledged, answers {while_down:?}; \
         start-node took {start_took:.1?} (answers meanwhile {during_start:?}); after: {after_start:?}; \
         revocation seen everywhere after {revocation:.0?}; 503 details {:?}; drill took {:.1?}",
        down_for,
        tally.unavailable_details.lock().unwrap(),
        drill_started.elapsed()
    );
    tally.assert_only(&[202, 503]);
    assert_eq!(
        tally
            .unavailable_without_retry_after
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "every 503 carries Retry-After"
    );
    let stored = assert_stored_exactly_once(instances[0], &tenant, &tally).await;
    reports_agree(&instances, &tenant, stored, from).await;
    rollups_verify(backend, &tenant, from);
    for process in processes {
        terminate(process).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the 3-node cluster: VOLCANION_TEST_CASSANDRA_CLUSTER and --include-ignored"]
async fn three_instances_ride_out_a_lost_cassandra_node() {
    let backend =
        Backend::cassandra_cluster_from_env("three_instances_ride_out_a_lost_cassandra_node");
    let _cleanup = KeyspaceCleanup::new(backend);
    tokio::time::timeout(DRILL_TIMEOUT, drill(backend))
        .await
        .expect("the drill finishes within its time bound");
}

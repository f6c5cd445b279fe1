//! Operator traps on Cassandra (issue 23): a missing keyspace (a typo in
//! `cassandra.keyspace`) is created with the configured replication and a warning, or
//! refused with `cassandra.create_keyspace = false`; an existing keyspace replicated
//! otherwise is reported; a changed `cassandra.partner_buckets` is refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use volcanion::config::Config;
use volcanion::store::StoreError;
use volcanion::store::cassandra::{CassandraStore, migrate};

use crate::helpers::{ADMIN_TOKEN, Backend, KeyspaceCleanup, cql_session};

/// The datacenter of the test node (`scripts/cassandra.sh`: Cassandra's default).
const TEST_DATACENTER: &str = "datacenter1";

/// How a `volcanion serve` start ended: serving (still running) or exited.
struct Startup {
    /// The JSON log lines it wrote up to that point.
    log: Vec<Value>,
    running: Option<Child>,
    exited: Option<ExitStatus>,
}

impl Startup {
    fn warnings(&self) -> Vec<&Value> {
        self.log
            .iter()
            .filter(|line| line["level"] == "WARN")
            .collect()
    }
}

/// Starts the binary on `backend` with `settings` and reads its log until it serves or
/// exits.
async fn serve(data_dir: &Path, backend: Backend, settings: &[(&str, &str)]) -> Startup {
    let mut child = Command::new(env!("CARGO_BIN_EXE_volcanion"))
        .arg("serve")
        .env_clear()
        .env("VOLCANION_LISTEN", "127.0.0.1:0")
        .env("VOLCANION_DATA_DIR", data_dir)
        .env("VOLCANION_ADMIN_TOKEN", ADMIN_TOKEN)
        .envs(backend.environment())
        .envs(settings.iter().copied())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    // A hang guard only: both outcomes end the loop.
    let serving = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let entry = serde_json::from_str::<Value>(&line).unwrap_or(Value::String(line));
            let serving = entry["message"] == "serving";
            log.push(entry);
            if serving {
                return true;
            }
        }
        false
    })
    .await
    .expect("the binary serves or exits");
    if serving {
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        return Startup {
            log,
            running: Some(child),
            exited: None,
        };
    }
    let status = child.wait().await.expect("the exited child is reaped");
    Startup {
        log,
        running: None,
        exited: Some(status),
    }
}

/// The keyspace's replication as Cassandra holds it, or `None` when it does not exist.
async fn replication(config: &Config) -> Option<BTreeMap<String, String>> {
    let session = cql_session(config).await;
    session
        .query_unpaged(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (config.cassandra.keyspace.as_str(),),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .maybe_first_row::<(BTreeMap<String, String>,)>()
        .unwrap()
        .map(|(replication,)| replication)
}

fn config_of(backend: Backend) -> Config {
    let mut config = Config::defaults();
    backend.apply(&mut config);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn serve_refuses_a_missing_keyspace_when_create_keyspace_is_off() {
    let backend =
        Backend::cassandra_from_env("serve_refuses_a_missing_keyspace_when_create_keyspace_is_off");
    let _cleanup = KeyspaceCleanup::new(backend);
    let config = config_of(backend);
    let data_dir = TempDir::new().unwrap();

    let startup = serve(
        data_dir.path(),
        backend,
        &[("VOLCANION_CASSANDRA__CREATE_KEYSPACE", "false")],
    )
    .await;

    assert!(startup.running.is_none(), "it served: {:?}", startup.log);
    assert!(!startup.exited.unwrap().success());
    let refusal = startup
        .log
        .iter()
        .find(|line| line["message"] == "cannot start")
        .unwrap_or_else(|| panic!("no refusal in {:?}", startup.log));
    let error = refusal["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "keyspace {} does not exist",
            config.cassandra.keyspace
        )),
        "{error}"
    );
    assert!(
        error.contains("cassandra.create_keyspace = false"),
        "{error}"
    );
    assert_eq!(replication(&config).await, None, "the keyspace was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn a_missing_keyspace_is_created_with_the_configured_replication_and_a_warning() {
    let backend = Backend::cassandra_from_env(
        "a_missing_keyspace_is_created_with_the_configured_replication_and_a_warning",
    );
    let _cleanup = KeyspaceCleanup::new(backend);
    let config = config_of(backend);
    let data_dir = TempDir::new().unwrap();

    let startup = serve(
        data_dir.path(),
        backend,
        &[("VOLCANION_CASSANDRA__LOCAL_DATACENTER", TEST_DATACENTER)],
    )
    .await;

    assert!(
        startup.running.is_some(),
        "it did not serve: {:?}",
        startup.log
    );
    let created = startup
        .warnings()
        .into_iter()
        .find(|line| line["keyspace"] == config.cassandra.keyspace.as_str())
        .unwrap_or_else(|| panic!("no warning naming the keyspace in {:?}", startup.log));
    assert!(
        created["message"]
            .as_str()
            .unwrap()
            .contains("cassandra.create_keyspace = false"),
        "{created}"
    );
    assert_eq!(
        created["replication"],
        "{'class': 'NetworkTopologyStrategy', 'datacenter1': 1}"
    );
    let replication = replication(&config).await.expect("the keyspace exists");
    assert_eq!(
        replication["class"],
        "org.apache.cassandra.locator.NetworkTopologyStrategy"
    );
    assert_eq!(replication[TEST_DATACENTER], "1");
    assert_eq!(replication.len(), 2, "{replication:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn an_existing_keyspace_replicated_otherwise_is_reported_at_warn_level() {
    let backend = Backend::cassandra_from_env(
        "an_existing_keyspace_replicated_otherwise_is_reported_at_warn_level",
    );
    let _cleanup = KeyspaceCleanup::new(backend);
    let config = config_of(backend);
    let session = cql_session(&config).await;
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE {} WITH replication = \
                 {{'class': 'SimpleStrategy', 'replication_factor': 1}}",
                config.cassandra.keyspace
            ),
            (),
        )
        .await
        .unwrap();
    session.await_schema_agreement().await.unwrap();
    let data_dir = TempDir::new().unwrap();

    let startup = serve(
        data_dir.path(),
        backend,
        &[("VOLCANION_CASSANDRA__LOCAL_DATACENTER", TEST_DATACENTER)],
    )
    .await;

    assert!(
        startup.running.is_some(),
        "it did not serve: {:?}",
        startup.log
    );
    let warnings = startup.warnings();
    let mismatch = warnings
        .iter()
        .find(|line| line["actual"].is_string())
        .unwrap_or_else(|| panic!("no replication warning in {:?}", startup.log));
    assert_eq!(mismatch["keyspace"], config.cassandra.keyspace.as_str());
    assert_eq!(
        mismatch["actual"],
        "{'class': 'SimpleStrategy', 'replication_factor': '1'}"
    );
    assert_eq!(
        mismatch["configured"],
        "{'class': 'NetworkTopologyStrategy', 'datacenter1': 1}"
    );
    assert!(
        !warnings
            .iter()
            .any(|line| line["message"].as_str().unwrap().contains("creating it")),
        "an existing keyspace is not created: {warnings:?}"
    );
    let unchanged = replication(&config).await.unwrap();
    assert_eq!(
        unchanged["class"],
        "org.apache.cassandra.locator.SimpleStrategy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn a_changed_partner_bucket_count_is_refused_and_the_recorded_one_accepted() {
    let backend = Backend::cassandra_from_env(
        "a_changed_partner_bucket_count_is_refused_and_the_recorded_one_accepted",
    );
    let _cleanup = KeyspaceCleanup::new(backend);
    let mut config = config_of(backend);
    config.cassandra.partner_buckets = 4;
    // `volcanion migrate` records the count, as a first start would.
    migrate::run(&config.cassandra).await.expect("migrate");
    drop(
        CassandraStore::open(&config.cassandra)
            .await
            .expect("4, as recorded"),
    );

    for changed in [2, 8] {
        config.cassandra.partner_buckets = changed;
        let refused = CassandraStore::open(&config.cassandra).await;
        let Err(StoreError::Misconfigured(message)) = refused else {
            panic!("partner_buckets {changed} was not refused");
        };
        assert!(
            message.contains(&format!("cassandra.partner_buckets is {changed}")),
            "{message}"
        );
        assert!(
            message.contains("set cassandra.partner_buckets = 4"),
            "{message}"
        );
        let migration = migrate::run(&config.cassandra).await;
        assert!(
            matches!(migration, Err(StoreError::Misconfigured(_))),
            "migrate accepted partner_buckets {changed}: {migration:?}"
        );
    }

    config.cassandra.partner_buckets = 4;
    drop(
        CassandraStore::open(&config.cassandra)
            .await
            .expect("4 again"),
    );
}

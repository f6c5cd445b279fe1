//! Instances starting together on a new keyspace: each one opens the store, finds the
//! schema missing and migrates, all at the same moment. Every one must come up, and the
//! nodes must end with one agreed schema holding every table. `tests/cluster_drill.rs`
//! runs the same on the 3-node cluster, where two coordinators could otherwise give one
//! table two ids.

use volcanion::config::Config;
use volcanion::store::cassandra::CassandraStore;
use volcanion::store::cassandra::migrate;

use crate::helpers::{Backend, KeyspaceCleanup, cql_session};

const INSTANCES: usize = 4;

/// `instances` stores opened at once on `backend`'s fresh keyspace, plus one
/// `volcanion migrate` among them: all succeed, the schema is complete and agreed.
pub async fn concurrent_starts_all_come_up(backend: Backend, instances: usize) {
    let _cleanup = KeyspaceCleanup::new(backend);
    let mut config = Config::defaults();
    backend.apply(&mut config);
    let opens: Vec<_> = (0..instances)
        .map(|_| {
            let cassandra = config.cassandra.clone();
            tokio::spawn(async move { CassandraStore::open(&cassandra).await.map(|_| ()) })
        })
        .collect();
    let migration = {
        let cassandra = config.cassandra.clone();
        tokio::spawn(async move { migrate::run(&cassandra).await })
    };
    for (instance, open) in opens.into_iter().enumerate() {
        let opened = open.await.expect("the open task finishes");
        assert!(
            opened.is_ok(),
            "instance {instance} of {instances} failed to start: {}",
            opened.err().unwrap()
        );
    }
    migration
        .await
        .expect("the migrate task finishes")
        .expect("volcanion migrate succeeds beside starting instances");

    let again = migrate::run(&config.cassandra)
        .await
        .expect("migrate again");
    assert!(!again.keyspace_created);
    assert_eq!(again.tables_created, 0);
    assert_eq!(again.tables_already_present(), again.tables_defined);
    let session = cql_session(&config).await;
    let agreed = session
        .check_schema_agreement()
        .await
        .expect("a schema agreement check");
    assert!(agreed.is_some(), "the nodes disagree on the schema");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn instances_starting_together_on_a_new_keyspace_all_come_up() {
    let backend =
        Backend::cassandra_from_env("instances_starting_together_on_a_new_keyspace_all_come_up");
    concurrent_starts_all_come_up(backend, INSTANCES).await;
}

/// A keyspace from before a step that adds a column (as `007_enrichment.cql` does) is
/// found to need migrating, and one migration completes it.
#[tokio::test]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn a_keyspace_missing_an_added_column_is_migrated() {
    let backend = Backend::cassandra_from_env("a_keyspace_missing_an_added_column_is_migrated");
    let _cleanup = KeyspaceCleanup::new(backend);
    let mut config = Config::defaults();
    backend.apply(&mut config);
    migrate::run(&config.cassandra).await.expect("migrate");
    let session = cql_session(&config).await;
    assert!(
        !migrate::needs_migration(&session, &config.cassandra)
            .await
            .unwrap()
    );
    let keyspace = &config.cassandra.keyspace;
    session
        .query_unpaged(
            format!("ALTER TABLE {keyspace}.events_by_subsystem_day DROP enrichment"),
            (),
        )
        .await
        .expect("drop the column, as an older release's keyspace lacks it");
    assert!(
        migrate::needs_migration(&session, &config.cassandra)
            .await
            .unwrap()
    );
    migrate::run(&config.cassandra)
        .await
        .expect("migrate again");
    assert!(
        !migrate::needs_migration(&session, &config.cassandra)
            .await
            .unwrap()
    );
}

/// A keyspace from before breakdown cells (`008_breakdowns.cql`) lacks their tables: it is
/// found to need migrating, and one migration adds them.
#[tokio::test]
#[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
async fn a_keyspace_missing_the_breakdown_tables_is_migrated() {
    let backend =
        Backend::cassandra_from_env("a_keyspace_missing_the_breakdown_tables_is_migrated");
    let _cleanup = KeyspaceCleanup::new(backend);
    let mut config = Config::defaults();
    backend.apply(&mut config);
    migrate::run(&config.cassandra).await.expect("migrate");
    let session = cql_session(&config).await;
    let keyspace = &config.cassandra.keyspace;
    for table in [
        "rollup_breakdowns",
        "rollup_breakdown_cells",
        "rollup_breakdown_folds",
    ] {
        session
            .query_unpaged(format!("DROP TABLE {keyspace}.{table}"), ())
            .await
            .expect("drop the table, as an older release's keyspace lacks it");
    }
    assert!(
        migrate::needs_migration(&session, &config.cassandra)
            .await
            .unwrap()
    );
    let report = migrate::run(&config.cassandra)
        .await
        .expect("migrate again");
    assert_eq!(report.tables_created, 3);
    assert!(
        !migrate::needs_migration(&session, &config.cassandra)
            .await
            .unwrap()
    );
    CassandraStore::open(&config.cassandra)
        .await
        .expect("the store prepares its breakdown statements on the migrated keyspace");
}

//! Connecting: one driver `Session` for the process, with the configured consistency,
//! timeouts and a token-aware (optionally datacenter-local) load-balancing policy.

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::statement::{Consistency, SerialConsistency};

use crate::config::{CassandraConfig, CassandraConsistency};
use crate::store::StoreError;

pub async fn connect(config: &CassandraConfig) -> Result<Session, StoreError> {
    let mut policy = DefaultPolicy::builder().token_aware(true);
    if let Some(datacenter) = &config.local_datacenter {
        policy = policy.prefer_datacenter(datacenter.clone());
    }
    let profile = ExecutionProfile::builder()
        .consistency(consistency(config.consistency))
        .serial_consistency(Some(SerialConsistency::LocalSerial))
        .request_timeout(Some(config.request_timeout))
        .load_balancing_policy(policy.build())
        .build();
    SessionBuilder::new()
        .known_nodes(&config.nodes)
        .connection_timeout(config.connect_timeout)
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await
        .map_err(|error| {
            StoreError::Unavailable(format!(
                "cannot connect to Cassandra at {}: {error}",
                config.nodes.join(",")
            ))
        })
}

fn consistency(level: CassandraConsistency) -> Consistency {
    match level {
        CassandraConsistency::One => Consistency::One,
        CassandraConsistency::Two => Consistency::Two,
        CassandraConsistency::Three => Consistency::Three,
        CassandraConsistency::Quorum => Consistency::Quorum,
        CassandraConsistency::All => Consistency::All,
        CassandraConsistency::LocalOne => Consistency::LocalOne,
        CassandraConsistency::LocalQuorum => Consistency::LocalQuorum,
        CassandraConsistency::EachQuorum => Consistency::EachQuorum,
    }
}

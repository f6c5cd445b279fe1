//! The keyspace itself: whether it exists, the replication the configuration asks for,
//! and what `serve` does about a missing keyspace or one replicated otherwise.

use std::collections::BTreeMap;
use std::fmt;

use scylla::client::session::Session;

use super::{corrupt, driver_error};
use crate::config::CassandraConfig;
use crate::store::StoreError;

/// A keyspace's replication map as `system_schema.keyspaces` holds it.
pub type ReplicationMap = BTreeMap<String, String>;

/// The replication the configuration asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    Simple {
        factor: u32,
    },
    /// In `local_datacenter`; other datacenters of the keyspace are the operator's.
    NetworkTopology {
        datacenter: String,
        factor: u32,
    },
}

impl Replication {
    pub fn configured(config: &CassandraConfig) -> Replication {
        let factor = config.replication_factor;
        match &config.local_datacenter {
            Some(datacenter) => Replication::NetworkTopology {
                datacenter: datacenter.clone(),
                factor,
            },
            None => Replication::Simple { factor },
        }
    }

    /// Whether a keyspace replicated as `actual` is replicated as configured.
    pub fn matches(&self, actual: &ReplicationMap) -> bool {
        let class = actual.get("class").map(|class| short_class(class));
        match self {
            Replication::Simple { factor } => {
                class == Some("SimpleStrategy")
                    && actual.get("replication_factor") == Some(&factor.to_string())
            }
            Replication::NetworkTopology { datacenter, factor } => {
                class == Some("NetworkTopologyStrategy")
                    && actual.get(datacenter) == Some(&factor.to_string())
            }
        }
    }
}

/// The CQL replication map, as `CREATE KEYSPACE` takes it.
impl fmt::Display for Replication {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Replication::Simple { factor } => write!(
                formatter,
                "{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}"
            ),
            Replication::NetworkTopology { datacenter, factor } => write!(
                formatter,
                "{{'class': 'NetworkTopologyStrategy', '{datacenter}': {factor}}}"
            ),
        }
    }
}

/// An existing keyspace replicated otherwise than configured: both, readably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationMismatch {
    pub keyspace: String,
    pub actual: String,
    pub configured: String,
}

impl fmt::Display for ReplicationMismatch {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "keyspace {} is replicated {} but the configuration (cassandra.replication_factor, \
             cassandra.local_datacenter) says {}; ALTER KEYSPACE and repair to change it, or \
             correct the configuration",
            self.keyspace, self.actual, self.configured
        )
    }
}

/// `None` when `actual` is what the configuration asks for.
pub fn replication_mismatch(
    config: &CassandraConfig,
    actual: &ReplicationMap,
) -> Option<ReplicationMismatch> {
    let configured = Replication::configured(config);
    if configured.matches(actual) {
        return None;
    }
    Some(ReplicationMismatch {
        keyspace: config.keyspace.clone(),
        actual: describe(actual),
        configured: configured.to_string(),
    })
}

/// The keyspace's replication map, or `None` when it does not exist.
pub async fn replication_of(
    session: &Session,
    keyspace: &str,
) -> Result<Option<ReplicationMap>, StoreError> {
    let query = "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?";
    let result = session
        .query_unpaged(query, (keyspace,))
        .await
        .map_err(driver_error)?;
    let rows = result.into_rows_result().map_err(corrupt)?;
    rows.maybe_first_row::<(ReplicationMap,)>()
        .map(|row| row.map(|(replication,)| replication))
        .map_err(corrupt)
}

/// What `serve` does before migrating: a missing keyspace is refused when
/// `create_keyspace` is off, and otherwise created (by the migration that follows) with
/// a warning, since a typo in `keyspace` lands here too; an existing keyspace replicated
/// otherwise than configured is started on, with a warning.
pub async fn check_before_start(
    session: &Session,
    config: &CassandraConfig,
) -> Result<(), StoreError> {
    let keyspace = &config.keyspace;
    match replication_of(session, keyspace).await? {
        None if !config.create_keyspace => Err(StoreError::Misconfigured(format!(
            "keyspace {keyspace} does not exist and cassandra.create_keyspace = false: \
             create it with `volcanion migrate` (or the cql/ files), or correct cassandra.keyspace"
        ))),
        None => {
            let replication = Replication::configured(config);
            tracing::warn!(%keyspace, %replication, "keyspace missing: creating it (set cassandra.create_keyspace = false to refuse to start instead)");
            Ok(())
        }
        Some(actual) => {
            if let Some(mismatch) = replication_mismatch(config, &actual) {
                tracing::warn!(%keyspace, actual = %mismatch.actual, configured = %mismatch.configured, "keyspace replicated otherwise than configured (ALTER KEYSPACE and repair, or correct cassandra.replication_factor / local_datacenter)");
            }
            Ok(())
        }
    }
}

/// `{'class': 'SimpleStrategy', 'replication_factor': '3'}`, class first, without the
/// `org.apache.cassandra.locator.` prefix.
fn describe(actual: &ReplicationMap) -> String {
    let class = actual.get("class").map(|class| short_class(class));
    let entries = class
        .map(|class| format!("'class': '{class}'"))
        .into_iter()
        .chain(
            actual
                .iter()
                .filter(|(key, _)| key.as_str() != "class")
                .map(|(key, value)| format!("'{key}': '{value}'")),
        )
        .collect::<Vec<_>>();
    format!("{{{}}}", entries.join(", "))
}

fn short_class(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn map(entries: &[(&str, &str)]) -> ReplicationMap {
        entries
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    fn simple(factor: &str) -> ReplicationMap {
        map(&[
            ("class", "org.apache.cassandra.locator.SimpleStrategy"),
            ("replication_factor", factor),
        ])
    }

    #[test]
    fn the_default_configuration_matches_a_single_node_keyspace() {
        let config = Config::defaults().cassandra;
        assert_eq!(replication_mismatch(&config, &simple("1")), None);
    }

    #[test]
    fn another_factor_is_a_mismatch_naming_both() {
        let mut config = Config::defaults().cassandra;
        config.replication_factor = 3;
        let mismatch = replication_mismatch(&config, &simple("1")).unwrap();
        assert_eq!(
            mismatch.actual,
            "{'class': 'SimpleStrategy', 'replication_factor': '1'}"
        );
        assert_eq!(
            mismatch.configured,
            "{'class': 'SimpleStrategy', 'replication_factor': 3}"
        );
        assert!(mismatch.to_string().contains("keyspace volcanion"));
    }

    #[test]
    fn a_datacenter_configured_checks_that_datacenter_only() {
        let mut config = Config::defaults().cassandra;
        config.local_datacenter = Some("dc1".to_string());
        config.replication_factor = 3;
        let network = |dc1: &str| {
            map(&[
                (
                    "class",
                    "org.apache.cassandra.locator.NetworkTopologyStrategy",
                ),
                ("dc1", dc1),
                ("dc2", "2"),
            ])
        };
        assert_eq!(replication_mismatch(&config, &network("3")), None);
        assert!(replication_mismatch(&config, &network("1")).is_some());
        assert!(replication_mismatch(&config, &simple("3")).is_some());
    }

    #[test]
    fn the_configured_replication_reads_as_cql() {
        let mut config = Config::defaults().cassandra;
        assert_eq!(
            Replication::configured(&config).to_string(),
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        );
        config.local_datacenter = Some("dc1".to_string());
        config.replication_factor = 3;
        assert_eq!(
            Replication::configured(&config).to_string(),
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"
        );
    }
}

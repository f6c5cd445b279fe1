//! The `cql/` files, compiled in, applied in order. They name the keyspace `volcanion` and
//! a single-node replication map; both are substituted with the configured values, so the
//! same files serve `volcanion migrate` and an operator's `cqlsh -f`.

use scylla::client::session::Session;

use super::keyspace::{self, Replication, ReplicationMismatch};
use super::{driver_error, schema_change, settings};
use crate::config::CassandraConfig;
use crate::store::StoreError;

/// In the order they must be applied.
pub const MIGRATIONS: [(&str, &str); 12] = [
    (
        "001_keyspace.cql",
        include_str!("../../../cql/001_keyspace.cql"),
    ),
    (
        "002_events.cql",
        include_str!("../../../cql/002_events.cql"),
    ),
    (
        "003_metadata.cql",
        include_str!("../../../cql/003_metadata.cql"),
    ),
    (
        "004_rollups.cql",
        include_str!("../../../cql/004_rollups.cql"),
    ),
    (
        "005_settings.cql",
        include_str!("../../../cql/005_settings.cql"),
    ),
    (
        "006_cardinality.cql",
        include_str!("../../../cql/006_cardinality.cql"),
    ),
    (
        "007_enrichment.cql",
        include_str!("../../../cql/007_enrichment.cql"),
    ),
    (
        "008_breakdowns.cql",
        include_str!("../../../cql/008_breakdowns.cql"),
    ),
    (
        "009_people.cql",
        include_str!("../../../cql/009_people.cql"),
    ),
    (
        "010_people_postings.cql",
        include_str!("../../../cql/010_people_postings.cql"),
    ),
    (
        "011_people_user_ids.cql",
        include_str!("../../../cql/011_people_user_ids.cql"),
    ),
    (
        "012_lifecycle.cql",
        include_str!("../../../cql/012_lifecycle.cql"),
    ),
];

const KEYSPACE_PLACEHOLDER: &str = "volcanion";
const REPLICATION_PLACEHOLDER: &str = "{'class': 'SimpleStrategy', 'replication_factor': 1}";

/// What `volcanion migrate` changed. The files are all `IF NOT EXISTS`, so running them
/// again is harmless; this says whether it did anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub keyspace_created: bool,
    pub tables_created: usize,
    /// The tables the `cql/` files define.
    pub tables_defined: usize,
    /// The keyspace existed, replicated otherwise than configured (left as it is).
    pub replication_mismatch: Option<ReplicationMismatch>,
}

impl MigrationReport {
    pub fn tables_already_present(&self) -> usize {
        self.tables_defined.saturating_sub(self.tables_created)
    }
}

/// `volcanion migrate`: connects, applies every statement (creating the keyspace if it
/// is missing, whatever `create_keyspace` says: this is the explicit way to create it),
/// records `partner_buckets` (or refuses a value other than the recorded one), and tells
/// what changed by counting the keyspace's tables before and after.
pub async fn run(config: &CassandraConfig) -> Result<MigrationReport, StoreError> {
    let session = super::session::connect(config).await?;
    let existing_replication = keyspace::replication_of(&session, &config.keyspace).await?;
    let tables_before = table_count(&session, &config.keyspace).await?;
    apply(&session, config).await?;
    settings::check_partner_buckets(&session, config).await?;
    let tables_after = table_count(&session, &config.keyspace).await?;
    let tables_defined = tables_defined(config);
    Ok(MigrationReport {
        keyspace_created: existing_replication.is_none(),
        tables_created: tables_after.saturating_sub(tables_before),
        tables_defined,
        replication_mismatch: existing_replication
            .and_then(|actual| keyspace::replication_mismatch(config, &actual)),
    })
}

fn tables_defined(config: &CassandraConfig) -> usize {
    MIGRATIONS
        .iter()
        .flat_map(|(_, text)| statements(text, config))
        .filter(|statement| statement.starts_with("CREATE TABLE"))
        .count()
}

/// Whether the keyspace lacks a table or a column the `cql/` files define (missing, or
/// older than this release), so that `serve` applies them at start.
pub async fn needs_migration(
    session: &Session,
    config: &CassandraConfig,
) -> Result<bool, StoreError> {
    if table_count(session, &config.keyspace).await? < tables_defined(config) {
        return Ok(true);
    }
    for (table, column) in columns_added(config) {
        let query = "SELECT column_name FROM system_schema.columns \
            WHERE keyspace_name = ? AND table_name = ? AND column_name = ?";
        let result = session
            .query_unpaged(
                query,
                (config.keyspace.as_str(), table.as_str(), column.as_str()),
            )
            .await
            .map_err(driver_error)?;
        let rows = result
            .into_rows_result()
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        if rows.rows_num() == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The (table, column) pairs the `ALTER TABLE … ADD IF NOT EXISTS` statements add.
fn columns_added(config: &CassandraConfig) -> Vec<(String, String)> {
    MIGRATIONS
        .iter()
        .flat_map(|(_, text)| statements(text, config))
        .filter_map(|statement| {
            let words: Vec<&str> = statement.split_whitespace().collect();
            match words.as_slice() {
                [
                    "ALTER",
                    "TABLE",
                    table,
                    "ADD",
                    "IF",
                    "NOT",
                    "EXISTS",
                    column,
                    ..,
                ] => {
                    let table = table.rsplit('.').next().unwrap_or(table);
                    Some((table.to_string(), column.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

async fn table_count(session: &Session, keyspace: &str) -> Result<usize, StoreError> {
    let query = "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?";
    schema_rows(session, query, keyspace).await
}

/// How many rows a query of the schema tables for `keyspace` returns.
async fn schema_rows(session: &Session, query: &str, keyspace: &str) -> Result<usize, StoreError> {
    let result = session
        .query_unpaged(query, (keyspace,))
        .await
        .map_err(driver_error)?;
    let rows = result
        .into_rows_result()
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
    Ok(rows.rows_num())
}

/// Applies every statement of every file (each is `IF NOT EXISTS`) as a schema change that
/// other instances may be making at the same time (`schema_change`), waits until all nodes
/// agree on the schema, and checks that every table is there. Returns how many statements ran.
pub async fn apply(session: &Session, config: &CassandraConfig) -> Result<usize, StoreError> {
    let mut applied = 0;
    for (file, text) in MIGRATIONS {
        for statement in statements(text, config) {
            schema_change::apply(session, &statement)
                .await
                .map_err(|error| StoreError::Unavailable(format!("migration {file}: {error}")))?;
            applied += 1;
        }
    }
    schema_change::await_agreement(session).await?;
    let tables_present = table_count(session, &config.keyspace).await?;
    let tables_defined = tables_defined(config);
    if tables_present < tables_defined {
        return Err(StoreError::Unavailable(format!(
            "keyspace {} has {tables_present} of the {tables_defined} tables after migrating",
            config.keyspace
        )));
    }
    Ok(applied)
}

/// The statements of one file, comments dropped, names and replication substituted.
pub fn statements(file_text: &str, config: &CassandraConfig) -> Vec<String> {
    let without_comments: String = file_text
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|statement| !statement.is_empty())
        .map(|statement| {
            let replicated = statement.replace(REPLICATION_PLACEHOLDER, &replication(config));
            replace_word(&replicated, KEYSPACE_PLACEHOLDER, &config.keyspace)
        })
        .collect()
}

fn replication(config: &CassandraConfig) -> String {
    Replication::configured(config).to_string()
}

/// Replaces `word` where it stands alone (not inside `volcanion_x` or `xvolcanion`).
fn replace_word(text: &str, word: &str, replacement: &str) -> String {
    let is_identifier = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(position) = rest.find(word) {
        let before = rest[..position].chars().next_back();
        let after = rest[position + word.len()..].chars().next();
        let standalone = !before.is_some_and(is_identifier) && !after.is_some_and(is_identifier);
        result.push_str(&rest[..position]);
        result.push_str(if standalone { replacement } else { word });
        rest = &rest[position + word.len()..];
    }
    result.push_str(rest);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn keyspace_and_replication_are_substituted() {
        let mut config = Config::defaults().cassandra;
        config.keyspace = "tracking_eu".to_string();
        config.replication_factor = 3;
        config.local_datacenter = Some("dc1".to_string());
        let all: Vec<String> = MIGRATIONS
            .iter()
            .flat_map(|(_, text)| statements(text, &config))
            .collect();
        assert!(all[0].starts_with("CREATE KEYSPACE IF NOT EXISTS tracking_eu"));
        assert!(all[0].contains("'NetworkTopologyStrategy', 'dc1': 3"));
        assert!(all.iter().skip(1).all(|s| s.contains("tracking_eu.")));
        assert!(all.iter().all(|s| !s.contains("volcanion")));
        assert!(all.iter().all(|s| s.contains("IF NOT EXISTS")));
    }

    #[test]
    fn a_report_counts_the_tables_left_as_they_were() {
        let report = MigrationReport {
            keyspace_created: false,
            tables_created: 2,
            tables_defined: 13,
            replication_mismatch: None,
        };
        assert_eq!(report.tables_already_present(), 11);
    }

    #[test]
    fn only_standalone_words_are_replaced() {
        assert_eq!(
            replace_word("volcanion.t volcanion_x xvolcanion", "volcanion", "ks"),
            "ks.t volcanion_x xvolcanion"
        );
    }
}

//! Settings recorded in the keyspace (`keyspace_settings`, `cql/005_settings.cql`) that
//! every instance on it must share. Today `partner_buckets`: rows are placed in bucket
//! `hash(event id) % n`, and readers fan out over buckets `0..n`.
//!
//! Lowering n hides the rows in buckets `n..` from every read, and the next fold of an
//! hour overwrites its rollups with the smaller count. Raising it is no safer: while
//! instances with the old and new n run side by side (a rolling restart), the old ones
//! read and fold without the new buckets; and a retried write of an event claimed under
//! the old n lands in another bucket than its first rows, so it is stored twice. There
//! is no migration that moves rows between buckets, so any change is refused: the first
//! instance to start (or `volcanion migrate`) records n, and one configured otherwise
//! refuses to start. Another n needs a new keyspace.

use std::time::Duration;

use scylla::client::session::Session;
use tokio::time::Instant;

use super::schema_change::SCHEMA_CHANGE_DEADLINE;
use super::{corrupt, driver_error};
use crate::config::CassandraConfig;
use crate::store::StoreError;

const PARTNER_BUCKETS: &str = "partner_buckets";

/// Records the configured `partner_buckets` if none is recorded yet, and refuses a
/// configuration that differs from the recorded value.
pub async fn check_partner_buckets(
    session: &Session,
    config: &CassandraConfig,
) -> Result<(), StoreError> {
    let keyspace = &config.keyspace;
    let configured = config.partner_buckets.to_string();
    let recorded = record_once(session, keyspace, PARTNER_BUCKETS, &configured).await?;
    match bucket_change(keyspace, &recorded, config.partner_buckets) {
        Some(message) => Err(StoreError::Misconfigured(message)),
        None => Ok(()),
    }
}

/// Records `value` unless a value is recorded (a lightweight transaction, so instances
/// starting together record one), and returns the recorded one. Those instances are also
/// migrating the keyspace at that moment: a Paxos round they contend for can time out,
/// and a schema change can evict the statement just prepared. Such a passing failure is
/// retried (`IF NOT EXISTS` makes a second run harmless) until the schema-change deadline.
async fn record_once(
    session: &Session,
    keyspace: &str,
    name: &str,
    value: &str,
) -> Result<String, StoreError> {
    let deadline = Instant::now() + SCHEMA_CHANGE_DEADLINE;
    let mut backoff = Duration::from_millis(100);
    loop {
        match try_record_once(session, keyspace, name, value).await {
            Ok(recorded) => return Ok(recorded),
            Err(StoreError::Unavailable(failure)) if Instant::now() + backoff <= deadline => {
                tracing::warn!(error = %failure, setting = name, retry_in = ?backoff, "recording a keyspace setting failed; retrying (other instances may be migrating)");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(error) => return Err(error),
        }
    }
}

async fn try_record_once(
    session: &Session,
    keyspace: &str,
    name: &str,
    value: &str,
) -> Result<String, StoreError> {
    if let Some(recorded) = recorded_value(session, keyspace, name).await? {
        return Ok(recorded);
    }
    let record = format!(
        "INSERT INTO {keyspace}.keyspace_settings (name, value) VALUES (?, ?) IF NOT EXISTS"
    );
    session
        .query_unpaged(record, (name, value))
        .await
        .map_err(driver_error)?;
    recorded_value(session, keyspace, name)
        .await?
        .ok_or_else(|| corrupt(format!("keyspace {keyspace} lost its recorded {name}")))
}

async fn recorded_value(
    session: &Session,
    keyspace: &str,
    name: &str,
) -> Result<Option<String>, StoreError> {
    let read = format!("SELECT value FROM {keyspace}.keyspace_settings WHERE name = ?");
    let rows = session
        .query_unpaged(read, (name,))
        .await
        .map_err(driver_error)?
        .into_rows_result()
        .map_err(corrupt)?;
    Ok(rows
        .maybe_first_row::<(Option<String>,)>()
        .map_err(corrupt)?
        .and_then(|(value,)| value))
}

/// The refusal when `configured` differs from what the keyspace recorded.
fn bucket_change(keyspace: &str, recorded: &str, configured: u32) -> Option<String> {
    if recorded == configured.to_string() {
        return None;
    }
    Some(format!(
        "cassandra.partner_buckets is {configured}, but keyspace {keyspace} was written with \
         partner_buckets = {recorded}: set cassandra.partner_buckets = {recorded} (its rows \
         are placed in that many buckets and can't be moved), or use a new keyspace for \
         another bucket count"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_count_is_accepted() {
        assert_eq!(bucket_change("volcanion", "4", 4), None);
    }

    #[test]
    fn a_lower_or_higher_count_is_refused_naming_both_and_the_way_out() {
        for configured in [2, 8] {
            let message = bucket_change("volcanion", "4", configured).unwrap();
            assert!(
                message.contains(&format!("cassandra.partner_buckets is {configured}")),
                "{message}"
            );
            assert!(message.contains("partner_buckets = 4"), "{message}");
            assert!(message.contains("keyspace volcanion"), "{message}");
        }
    }
}

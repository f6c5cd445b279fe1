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

use scylla::client::session::Session;

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
    // A lightweight transaction: instances starting together record one value.
    let record = format!(
        "INSERT INTO {keyspace}.keyspace_settings (name, value) VALUES (?, ?) IF NOT EXISTS"
    );
    session
        .query_unpaged(record, (PARTNER_BUCKETS, configured.as_str()))
        .await
        .map_err(driver_error)?;
    let read = format!("SELECT value FROM {keyspace}.keyspace_settings WHERE name = ?");
    let rows = session
        .query_unpaged(read, (PARTNER_BUCKETS,))
        .await
        .map_err(driver_error)?
        .into_rows_result()
        .map_err(corrupt)?;
    let recorded = rows
        .maybe_first_row::<(Option<String>,)>()
        .map_err(corrupt)?
        .and_then(|(value,)| value)
        .ok_or_else(|| {
            corrupt(format!(
                "keyspace {keyspace} lost its recorded {PARTNER_BUCKETS}"
            ))
        })?;
    match bucket_change(keyspace, &recorded, config.partner_buckets) {
        Some(message) => Err(StoreError::Misconfigured(message)),
        None => Ok(()),
    }
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

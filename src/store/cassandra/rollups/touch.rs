//! The write path's marks: the partner-hours a batch writes into, before its rows.

use std::collections::HashMap;

use chrono::Utc;
use uuid::Uuid;

use super::layout::{column, period, shard};
use super::{CassandraStore, all, micros};
use crate::rollups::Hour;
use crate::store::StoreError;

/// Marks the partner-hours a batch writes into (with the longest TTL of its rows there),
/// before its rows are written.
pub(in crate::store::cassandra) async fn touch(
    store: &CassandraStore,
    hours: &HashMap<(Uuid, Hour), i32>,
) -> Result<(), StoreError> {
    let now = micros(Utc::now());
    let statements = &store.statements;
    let marks: Vec<_> = hours
        .iter()
        .map(|(&(partner, hour), &ttl)| {
            let values = (now, ttl, now, partner, period(hour), column(hour));
            store.execute(&statements.touch_rollup_hour, values)
        })
        .collect();
    let pending: Vec<_> = hours
        .iter()
        .map(|(&(partner, hour), &ttl)| {
            let values = (shard(partner), partner, column(hour), now, now, ttl);
            store.execute(&statements.insert_rollup_pending, values)
        })
        .collect();
    futures::try_join!(all(store, marks), all(store, pending))?;
    Ok(())
}

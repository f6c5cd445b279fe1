//! Dropping the hour sketches an erasure's events were counted in, before their hours are
//! recounted: a sketch cannot forget a member, and a recount writes only the sketches of
//! what is left (an hour's last event of a type leaves that type's sketch behind). The
//! deletion is timestamped before the recount's writes, so what it writes stays.

use chrono::Utc;

use super::layout::{column, period, sketch_type};
use super::{CassandraStore, all, micros};
use crate::rollups::RollupDelta;
use crate::store::StoreError;

pub(in crate::store::cassandra) async fn drop_sketches(
    store: &CassandraStore,
    erased: &RollupDelta,
) -> Result<(), StoreError> {
    let deleted_at = micros(Utc::now());
    let statement = &store.lifecycle_statements.delete_rollup_sketch;
    let deletions: Vec<_> = erased
        .actors
        .keys()
        .map(|key| {
            let event_type = sketch_type(key.event_type.as_deref(), key.bots);
            let values = (
                deleted_at,
                key.owner,
                event_type,
                period(key.hour),
                column(key.hour),
            );
            store.execute(statement, values)
        })
        .collect();
    all(store, deletions).await
}

//! Rollups in Cassandra are recounts (`cql/004_rollups.cql`). Cassandra has no
//! transaction spanning the rows of a batch and a total, and its counters are not
//! idempotent, so the write path only marks the partner-hours it writes into
//! (`touch`, before the rows); once an hour has not been touched for `rollup_settle`,
//! `settle` recounts its raw events and stores counts and sketches as folded at that touch.
//! Retries, duplicates, several instances and restarts therefore cannot skew the counts:
//! they are whatever the raw rows are. An hour touched since its fold (the current hour, a
//! late event) is `unsettled`, and reports read it raw until it is folded again.
//!
//! Ordering uses client timestamps (microseconds): a touch is written `USING TIMESTAMP` its
//! own value, a fold `USING TIMESTAMP` the touch it covers, and a pending entry is deleted
//! at that touch, so a later touch always survives an earlier fold. This holds as long as
//! `rollup_settle` exceeds the longest write plus the clock skew between instances.
//!
//! - `layout`  periods, hour columns, pending shards and the row shapes of the tables
//! - `horizon` when an hour is settled and a day has ended; the chunks a repair walks
//! - `touch`   the write path's marks
//! - `read`    the settled hours (and current days) a report reads
//! - `recount` raw events recounted into an hour's fold, hours folded into a day row
//! - `settle`  the round that folds the pending hours no write touches any more
//! - `repair`  rebuilding and verifying a partner's range
//! - `breakdowns` breakdown cells recounted with each fold (`breakdown_rows` their tables,
//!   `breakdown_read` what reports read, `breakdown_verify` what verify checks)

mod breakdown_read;
mod breakdown_rows;
mod breakdown_verify;
mod breakdowns;
mod forget;
mod horizon;
mod layout;
mod read;
mod recount;
mod repair;
mod settle;
mod touch;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use super::CassandraStore;
use crate::store::StoreError;

pub(super) use breakdown_read::read as breakdown_cells;
pub(super) use breakdown_verify::verify as verify_breakdowns;
pub(super) use forget::drop_sketches;
pub(super) use read::read;
pub(super) use repair::{rebuild, rebuild_where, verify};
pub(super) use settle::settle;
pub(super) use touch::touch;

fn micros(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_micros()
}

/// Runs `writes`, `write_concurrency` at a time.
pub(super) async fn all(
    store: &CassandraStore,
    writes: Vec<impl std::future::Future<Output = Result<(), StoreError>>>,
) -> Result<(), StoreError> {
    futures::stream::iter(writes)
        .buffer_unordered(store.write_concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

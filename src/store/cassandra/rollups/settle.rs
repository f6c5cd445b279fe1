//! The settle round: the pending hours no write has touched for `rollup_settle` are
//! recounted and folded, then the days they complete get their day row. One partner-hour
//! whose fold fails (a store error, a row that does not decode) is logged, counted and
//! left pending for the next round: the round goes on with every other partner.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use uuid::Uuid;

use super::CassandraStore;
use super::breakdowns::recount_hours;
use super::horizon::Horizon;
use super::layout::{PENDING_SHARDS, column, hour_folds, hour_of};
use super::recount::{fold_day, store_fold};
use crate::rollups::{Hour, SettleOutcome};
use crate::store::StoreError;

/// Pending hours one round reads per shard; the rest wait for the next round.
const PENDING_PER_ROUND: i32 = 5_000;
/// Hours folded at once.
const FOLD_CONCURRENCY: usize = 4;

/// Recounts the pending hours that no write has touched since `now - settle`.
pub(in crate::store::cassandra) async fn settle(
    store: &CassandraStore,
    now: DateTime<Utc>,
) -> Result<SettleOutcome, StoreError> {
    let horizon = Horizon::new(now, store.rollup_settle);
    let mut outcome = SettleOutcome::default();
    let mut days: BTreeSet<(Uuid, Hour)> = BTreeSet::new();
    for shard in 0..PENDING_SHARDS {
        let pending: Vec<(Uuid, i32, i64)> = match store
            .select(
                &store.statements.select_rollup_pending,
                (shard, PENDING_PER_ROUND),
            )
            .await
        {
            Ok(pending) => pending,
            Err(error) => {
                tracing::warn!(shard, %error, "reading pending rollup hours failed; retrying next round");
                outcome.failed += 1;
                continue;
            }
        };
        let (due, waiting): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(_, _, touched)| horizon.settles(*touched));
        outcome.waiting += waiting.len();
        let folds: Vec<_> = due
            .into_iter()
            .map(|(partner, hour, pending_touch)| async move {
                let hour = hour_of(hour);
                let folded = fold_pending(store, shard, partner, hour, pending_touch, horizon)
                    .await
                    .inspect_err(|error| {
                        tracing::warn!(%partner, hour = hour.0, %error, "folding a rollup hour failed; it stays pending for the next round");
                    });
                (partner, hour, folded)
            })
            .collect();
        let results: Vec<(Uuid, Hour, Result<bool, StoreError>)> = futures::stream::iter(folds)
            .buffer_unordered(FOLD_CONCURRENCY)
            .collect()
            .await;
        for (partner, hour, result) in results {
            match result {
                Ok(true) => {
                    outcome.folded += 1;
                    days.insert((partner, hour.day()));
                }
                Ok(false) => outcome.waiting += 1,
                Err(_) => outcome.failed += 1,
            }
        }
    }
    // Days whose last hour has settled too get their day row, once per round.
    let days: Vec<_> = days
        .into_iter()
        .filter(|(_, day)| horizon.has_ended(*day))
        .map(|(partner, day)| async move {
            fold_day(store, partner, day, None)
                .await
                .inspect_err(|error| {
                    tracing::warn!(%partner, day = day.0, %error, "folding a rollup day failed; retrying when its hours fold again");
                })
        })
        .collect();
    let day_results: Vec<Result<(), StoreError>> = futures::stream::iter(days)
        .buffer_unordered(FOLD_CONCURRENCY)
        .collect()
        .await;
    outcome.failed += day_results.iter().filter(|result| result.is_err()).count();
    Ok(outcome)
}

/// Folds one pending hour if it is still settled; whether it did.
async fn fold_pending(
    store: &CassandraStore,
    shard: i32,
    partner: Uuid,
    hour: Hour,
    pending_touch: i64,
    horizon: Horizon,
) -> Result<bool, StoreError> {
    let done_at = match touched_at(store, partner, hour).await? {
        Some(touched) if !horizon.settles(touched) => return Ok(false),
        Some(touched) => {
            let (delta, breakdowns) = recount_hours(store, partner, hour, hour.next()).await?;
            store_fold(
                store,
                partner,
                hour,
                (&delta, &breakdowns),
                touched,
                touched,
            )
            .await?;
            touched
        }
        // The hour's touch expired with its events: nothing left to fold.
        None => pending_touch,
    };
    store
        .execute(
            &store.statements.delete_rollup_pending,
            (done_at, shard, partner, column(hour)),
        )
        .await?;
    Ok(true)
}

/// The latest touch of one partner-hour.
async fn touched_at(
    store: &CassandraStore,
    partner: Uuid,
    hour: Hour,
) -> Result<Option<i64>, StoreError> {
    let folds = hour_folds(store, partner, hour, hour.next()).await?;
    Ok(folds.first().and_then(|fold| fold.touched_at))
}

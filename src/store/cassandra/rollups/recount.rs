//! Raw events recounted into an hour's fold, and a day's settled hours folded into its day
//! row: what `settle` and `rebuild` store.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::breakdowns::{self, BreakdownFold};
use super::horizon::day_end;
use super::layout::{Grain, column, hour_rows, period, rows_over, sketch_type, write_parts};
use super::{CassandraStore, all};
use crate::model::Event;
use crate::people::anonymous_ids;
use crate::rollups::{ActorSketch, ActorUnion, Hour, HourCounts, RollupDelta};
use crate::store::cassandra::events_write::ttl_seconds;
use crate::store::cassandra::joins;
use crate::store::{EventQuery, EventScope, EventStore, StoreError};

/// Raw events read per page by a recount.
const RECOUNT_PAGE: usize = 5_000;

/// The rollups of a partner's raw events in hours `from..to`.
pub(super) async fn recount(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<RollupDelta, StoreError> {
    recount_with(store, partner, (from, to), false, |_| {}).await
}

/// The same, handing each event (with its payload if asked) to `each` too: one read of
/// the events feeds the breakdown cells (`breakdowns::recount_hours`).
pub(super) async fn recount_with(
    store: &CassandraStore,
    partner: Uuid,
    range: (Hour, Hour),
    with_payload: bool,
    mut each: impl FnMut(&Event) + Send,
) -> Result<RollupDelta, StoreError> {
    let mut delta = RollupDelta::default();
    each_event(store, partner, range, with_payload, |event| {
        delta.add(event);
        each(event);
    })
    .await?;
    Ok(delta)
}

/// Visits a partner's stored events in hours `from..to`, a page at a time, each given its
/// person (`Joins::resolve`).
pub(super) async fn each_event(
    store: &CassandraStore,
    partner: Uuid,
    (from, to): (Hour, Hour),
    with_payload: bool,
    mut each: impl FnMut(&Event) + Send,
) -> Result<(), StoreError> {
    let mut query = EventQuery {
        scope: EventScope::Partner(partner),
        from: from.start(),
        to: to.start(),
        filter: Default::default(),
        limit: RECOUNT_PAGE,
        cursor: None,
        with_payload,
    };
    loop {
        let mut page = store.query_events(&query).await?;
        // Each event counts as its person: the joins of the page's anonymous ids.
        let joins = joins::among(store, partner, &anonymous_ids(&page.items)).await?;
        page.items.iter_mut().for_each(|event| joins.resolve(event));
        page.items.iter().for_each(&mut each);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return Ok(()),
        }
    }
}

/// Stores `delta`'s rollups of `hour` as the fold of the touch `touched_at`, written at
/// cell timestamp `written_at`: sketches first, then the counts and the breakdown cells,
/// then the fold that marks it settled.
/// The number of events counted.
pub(super) async fn store_fold(
    store: &CassandraStore,
    partner: Uuid,
    hour: Hour,
    (delta, breakdowns): (&RollupDelta, &BreakdownFold),
    touched_at: i64,
    written_at: i64,
) -> Result<u64, StoreError> {
    let ttl = ttl_seconds(store, partner).await?;
    let statement = &store.statements.insert_rollup_sketch;
    let sketches: Vec<_> = delta
        .sketches()
        .filter(|(key, _)| key.hour == hour)
        .map(|(key, sketch)| {
            let event_type = sketch_type(key.event_type.as_deref(), key.bots);
            let values = (
                key.owner,
                event_type,
                period(hour),
                column(hour),
                sketch.to_bytes(),
                written_at,
                ttl,
            );
            store.execute(statement, values)
        })
        .collect();
    all(store, sketches).await?;
    let counts = delta.counts_of(partner).remove(&hour).unwrap_or_default();
    write_parts(
        store,
        Grain::Hour,
        (partner, hour),
        &counts,
        written_at,
        ttl,
    )
    .await?;
    breakdowns::write_hour(
        store,
        partner,
        hour,
        breakdowns,
        (touched_at, written_at, ttl),
    )
    .await?;
    // The counts live in the parts now: the row's own column (folds of older releases)
    // is cleared, and the fold marks the hour settled.
    let legacy_counts: Option<Vec<u8>> = None;
    store
        .execute(
            &store.statements.fold_rollup_hour,
            (
                written_at,
                ttl,
                touched_at,
                legacy_counts,
                partner,
                period(hour),
                column(hour),
            ),
        )
        .await?;
    Ok(counts.total())
}

/// Builds the day row of `day` from its 24 hours, if they are all settled: counts summed,
/// and for every owner and event type its hours' sketches merged. Written at the latest of
/// the hours' folds, or at `rewrite_at` (a rebuild replacing a row of the same folds).
pub(super) async fn fold_day(
    store: &CassandraStore,
    partner: Uuid,
    day: Hour,
    rewrite_at: Option<i64>,
) -> Result<(), StoreError> {
    let end = day_end(day);
    let rows = hour_rows(store, partner, day, end).await?;
    if rows.is_empty() || rows.iter().any(|row| !row.fold.is_settled()) {
        return Ok(());
    }
    let covers: i64 = rows.iter().filter_map(|row| row.fold.folded_at).sum();
    let written_at = rewrite_at.unwrap_or_else(|| {
        rows.iter()
            .filter_map(|row| row.fold.folded_at)
            .max()
            .unwrap_or(0)
    });
    let mut counts = HourCounts::default();
    for row in &rows {
        // Parts being rewritten by a rebuild: the day is built once it is done.
        let Some(hour_counts) = row.counts()? else {
            return Ok(());
        };
        counts.merge(&hour_counts);
    }
    let mut scopes: BTreeSet<(Uuid, String)> = BTreeSet::new();
    for cell in &counts.cells {
        for owner in [partner, cell.subsystem_id] {
            scopes.insert((owner, sketch_type(None, cell.is_bot)));
            scopes.insert((owner, sketch_type(Some(&cell.event_type), cell.is_bot)));
        }
    }
    let ttl = ttl_seconds(store, partner).await?;
    let statements = &store.statements;
    let merges: Vec<_> = scopes
        .into_iter()
        .map(|(owner, event_type)| async move {
            let key = (owner, Some(event_type.as_str()));
            let sketches: Vec<(i32, Vec<u8>)> =
                rows_over(store, &statements.select_rollup_sketches, key, day, end).await?;
            let mut union = ActorUnion::default();
            for (_, bytes) in &sketches {
                union.add_sketch(&ActorSketch::from_bytes(bytes).map_err(StoreError::Corrupt)?);
            }
            let values = (
                owner,
                event_type.as_str(),
                period(day),
                column(day),
                union.to_sketch().to_bytes(),
                written_at,
                ttl,
            );
            store
                .execute(&statements.insert_rollup_day_sketch, values)
                .await
        })
        .collect();
    all(store, merges).await?;
    breakdowns::fold_day(store, partner, day, (covers, written_at, ttl)).await?;
    write_parts(store, Grain::Day, (partner, day), &counts, written_at, ttl).await?;
    let legacy_counts: Option<Vec<u8>> = None;
    store
        .execute(
            &statements.insert_rollup_day,
            (
                partner,
                period(day),
                column(day),
                covers,
                legacy_counts,
                written_at,
                ttl,
            ),
        )
        .await
}

//! What reports read: settled hours with their counts and sketches, whole days from their
//! day rows where those are current, and which hours are unsettled (read raw instead).

use std::collections::{BTreeMap, BTreeSet};

use scylla::statement::prepared::PreparedStatement;

use super::CassandraStore;
use super::layout::{
    HourFold, covers_by_day, day_rows, hour_folds, hour_of, hour_rows, rows_over, sketch_type,
};
use crate::rollups::{
    ActorSketch, ActorUnion, CountCell, Hour, HourCounts, HourRollup, RollupQuery, RollupRead, runs,
};
use crate::store::StoreError;

/// The settled hours of `query` with their counts and sketch (its whole days as one
/// rollup each where a current day row exists), and the unsettled hours.
pub(in crate::store::cassandra) async fn read(
    store: &CassandraStore,
    query: &RollupQuery,
) -> Result<RollupRead, StoreError> {
    let statements = &store.statements;
    let folds = hour_folds(store, query.partner_id, query.from, query.to).await?;
    let mut unsettled: BTreeSet<Hour> = folds
        .iter()
        .filter(|fold| !fold.is_settled())
        .map(HourFold::hour)
        .collect();
    let covers = covers_by_day(&folds);
    let wanted: BTreeSet<Hour> = query
        .whole_days
        .iter()
        .filter(|day| !unsettled.iter().any(|hour| hour.day() == **day))
        .copied()
        .collect();
    let mut days: BTreeMap<Hour, HourRollup> = BTreeMap::new();
    let mut current = BTreeSet::new();
    if !wanted.is_empty() {
        for row in day_rows(store, query.partner_id, query.from, query.to).await? {
            let day = row.day();
            if !wanted.contains(&day) || !row.is_current(&covers) {
                continue;
            }
            // A day whose parts are being rewritten is read as its hours.
            if let Some(counts) = row.counts()? {
                current.insert(day);
                days.extend(narrowed(query, day, counts).map(|r| (day, r)));
            }
        }
    }
    let mut rollups = Vec::new();
    for run in runs(query.from, query.to, &current) {
        let mut part = BTreeMap::new();
        if run.days {
            part.extend(
                days.range(run.from..run.to)
                    .map(|(day, rollup)| (*day, rollup.clone())),
            );
            attach_sketches(
                store,
                &statements.select_rollup_day_sketches,
                query,
                (run.from, run.to),
                &mut part,
            )
            .await?;
        } else {
            for row in hour_rows(store, query.partner_id, run.from, run.to).await? {
                let hour = row.fold.hour();
                if !row.fold.is_settled() {
                    continue;
                }
                match row.counts()? {
                    Some(counts) => part.extend(narrowed(query, hour, counts).map(|r| (hour, r))),
                    // Its parts are being rewritten (a rebuild): read raw meanwhile.
                    None => {
                        unsettled.insert(hour);
                    }
                }
            }
            attach_sketches(
                store,
                &statements.select_rollup_sketches,
                query,
                (run.from, run.to),
                &mut part,
            )
            .await?;
        }
        rollups.extend(part.into_values());
    }
    Ok(RollupRead {
        hours: rollups,
        unsettled,
    })
}

/// A rollup of `query`'s cells of `counts`, if any are left.
fn narrowed(query: &RollupQuery, hour: Hour, counts: HourCounts) -> Option<HourRollup> {
    let cells: Vec<CountCell> = counts
        .cells
        .into_iter()
        .filter(|cell| query.wants(cell))
        .collect();
    (!cells.is_empty()).then_some(HourRollup {
        hour,
        cells,
        actors: None,
    })
}

/// Attaches the sketches `statement` reads (hour or day ones) to `rollups`.
async fn attach_sketches(
    store: &CassandraStore,
    statement: &PreparedStatement,
    query: &RollupQuery,
    (from, to): (Hour, Hour),
    rollups: &mut BTreeMap<Hour, HourRollup>,
) -> Result<(), StoreError> {
    let mut actors: BTreeMap<Hour, ActorUnion> = BTreeMap::new();
    for bots in query.partitions() {
        let event_type = sketch_type(query.event_type.as_deref(), *bots);
        let key = (query.sketch_owner(), Some(event_type.as_str()));
        for (hour, bytes) in rows_over::<(i32, Vec<u8>)>(store, statement, key, from, to).await? {
            if rollups.contains_key(&hour_of(hour)) {
                let sketch = ActorSketch::from_bytes(&bytes).map_err(StoreError::Corrupt)?;
                actors.entry(hour_of(hour)).or_default().add_sketch(&sketch);
            }
        }
    }
    for (hour, union) in actors {
        if let Some(rollup) = rollups.get_mut(&hour) {
            rollup.actors = Some(union.to_sketch());
        }
    }
    Ok(())
}

//! Rollups: what reports read instead of raw events. Per partner and UTC hour, exact counts
//! by (subsystem, event type, validity) (`HourCounts`), and distinct-actor sketches
//! (`ActorSketch`, HyperLogLog) per partner-hour and subsystem-hour, overall and per event
//! type. A store keeps them in the same write as the events they count (`RollupDelta`), so
//! only the events it actually inserted count, each once. Breakdowns (by page, referrer,
//! country…, docs/BREAKDOWNS.md) are kept the same way: `BreakdownDelta` per batch, a capped
//! `ValueTable` per cell and hour, `BreakdownRange` to merge a range and take its top values.
//! People's postings (`postings_fold`), the per-person index funnels and retention read,
//! are folded as cells of their own beside them (`Cell`).
//! Pure data: no store, no HTTP.

mod breakdown_cells;
mod breakdown_fold;
mod breakdown_range;
mod counts;
mod dimension;
mod encoded_table;
mod hour;
mod postings_fold;
mod sketch;
mod value_table;
mod visits_fold;

pub use counts::{CountCell, HourCounts, RollupDelta, SketchKey, class_byte, is_bot, split_class};
pub use hour::{HOURS_PER_DAY, Hour};
pub use sketch::{ActorSketch, ActorUnion};

pub use breakdown_cells::{
    BreakdownDelta, CELL_SPECS, CellKey, CellSpec, ValueCounts, ValueDelta, answered_by_rollups,
    total_dimension,
};
pub use breakdown_fold::{
    BreakdownDifference, BreakdownRecount, Cell, CellCounts, CellName, CellRecount, Cells,
    check_tables, dimension_values,
};
pub use breakdown_range::{BreakdownRange, TopValue, TopValues};
pub use dimension::{BUILTIN_DIMENSIONS, Dimension, DimensionValues, MAX_PROPERTY_DIMENSIONS};
pub use encoded_table::{EncodedTable, TableView};
pub use postings_fold::{PostingsRecount, postings_cell};
pub use value_table::{
    KeptValue, LIVE_VALUE_CAP, OtherValues, RecountedValue, TableDisagreement, VALUE_CAP,
    ValueTable,
};
pub use visits_fold::{
    ENTRY_PAGE, EXIT_PAGE, PageStep, VisitCount, page_cell, page_step, visits_cell,
};

use uuid::Uuid;

/// Whose rollups a report reads: a partner, or one of its subsystems, optionally one event
/// type, over whole UTC hours `from..to`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RollupQuery {
    pub partner_id: Uuid,
    pub subsystem_id: Option<Uuid>,
    pub event_type: Option<String>,
    pub from: Hour,
    pub to: Hour,
    /// UTC days (by their first hour) inside `from..to` that the report takes whole: a
    /// store may answer each with one rollup for the day instead of 24 (fewer sketches to
    /// merge), never for a day with an unsettled hour.
    pub whole_days: std::collections::BTreeSet<Hour>,
    /// Whether bots' events count (`includeBots=true`); by default only humans'.
    pub include_bots: bool,
}

impl RollupQuery {
    /// The sketch partitions to merge: humans', and bots' when they count.
    pub fn partitions(&self) -> &'static [bool] {
        if self.include_bots {
            &[false, true]
        } else {
            &[false]
        }
    }

    /// The owner whose sketches apply: the subsystem when narrowed, else the partner.
    pub fn sketch_owner(&self) -> Uuid {
        self.subsystem_id.unwrap_or(self.partner_id)
    }

    /// Whether a counted cell belongs to this query.
    pub fn wants(&self, cell: &CountCell) -> bool {
        (self.include_bots || !cell.is_bot)
            && self.subsystem_id.is_none_or(|id| id == cell.subsystem_id)
            && self
                .event_type
                .as_ref()
                .is_none_or(|wanted| *wanted == cell.event_type)
    }
}

/// One whole hour of a scope (or a whole UTC day, from `hour` on, when the query asked for
/// it): its counted cells (already narrowed to the query) and the sketch of its actors.
#[derive(Debug, Clone)]
pub struct HourRollup {
    pub hour: Hour,
    pub cells: Vec<CountCell>,
    pub actors: Option<ActorSketch>,
}

/// What a store's rollups give for a query: the whole hours they cover that have events,
/// and the hours written to too recently to be counted yet (`unsettled`), which a report
/// reads raw instead.
#[derive(Debug, Clone, Default)]
pub struct RollupRead {
    pub hours: Vec<HourRollup>,
    pub unsettled: std::collections::BTreeSet<Hour>,
}

/// Breakdown cells over whole hours `from..to` of a partner (each name: partition, filter,
/// dimension), as a report reads them: a store may answer each day of `whole_days` with the
/// day's cells instead of 24 hours' (as `RollupQuery`). The cells are read together, as of
/// one state of the folds: cells read one by one while an hour is folded could each see it
/// differently, and the report would count the hour both raw and from a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakdownQuery {
    pub partner_id: Uuid,
    pub names: Vec<CellName>,
    pub from: Hour,
    pub to: Hour,
    pub whole_days: std::collections::BTreeSet<Hour>,
}

/// What a store's breakdown cells give for a query: per name (in the query's order), the
/// stored tables of the settled hours and days, each with its hour (a day's: its first;
/// in no particular order; hours and days without events have none), and the hours not
/// folded yet, which a report reads raw.
#[derive(Debug, Clone, Default)]
pub struct BreakdownRead {
    pub tables: Vec<Vec<(Hour, EncodedTable)>>,
    /// The whole days answered by their day's cells (their tables carry the day's first
    /// hour, as that hour's own would).
    pub days: std::collections::BTreeSet<Hour>,
    pub unsettled: std::collections::BTreeSet<Hour>,
}

/// What one round of folding did: hours recounted, hours still waiting to settle, and
/// folds that failed (each left for the next round; the others went on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettleOutcome {
    pub folded: usize,
    pub waiting: usize,
    pub failed: usize,
}

/// A stretch of hours read at one grain: whole UTC days (`days`), or hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub days: bool,
    pub from: Hour,
    pub to: Hour,
}

/// `from..to` in runs, in order: the days of `whole_days` (by first hour) that lie inside
/// it as day runs, the other hours as hour runs.
pub fn runs(from: Hour, to: Hour, whole_days: &std::collections::BTreeSet<Hour>) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut hour = from;
    while hour < to {
        let days = hour.starts_day()
            && whole_days.contains(&hour)
            && hour.0.saturating_add(HOURS_PER_DAY) <= to.0;
        let next = if days {
            Hour(hour.0 + HOURS_PER_DAY)
        } else {
            hour.next()
        };
        match runs.last_mut() {
            Some(last) if last.days == days && last.to == hour => last.to = next,
            _ => runs.push(Run {
                days,
                from: hour,
                to: next,
            }),
        }
        hour = next;
    }
    runs
}

/// An hour (or, for day rollups, a UTC day: `hours` 24) whose stored counts are not what a
/// recount of its raw events gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupDifference {
    pub hour: Hour,
    pub hours: u32,
    pub stored: HourCounts,
    pub recounted: HourCounts,
}

/// The hours where `stored` and `recounted` disagree (an hour missing on one side counts as
/// empty there).
pub fn differences(
    stored: &std::collections::BTreeMap<Hour, HourCounts>,
    recounted: &std::collections::BTreeMap<Hour, HourCounts>,
) -> Vec<RollupDifference> {
    let hours: std::collections::BTreeSet<Hour> =
        stored.keys().chain(recounted.keys()).copied().collect();
    hours
        .into_iter()
        .filter_map(|hour| {
            let stored = stored.get(&hour).cloned().unwrap_or_default();
            let recounted = recounted.get(&hour).cloned().unwrap_or_default();
            (stored != recounted).then_some(RollupDifference {
                hour,
                hours: 1,
                stored,
                recounted,
            })
        })
        .collect()
}

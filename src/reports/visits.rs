//! Sessions in reports (API.md, "Sessions"): the summary's `visits`, `bounceRate` and
//! `visitDurationSeconds`, and the `entryPage` / `exitPage` breakdowns.
//!
//! A visit is cut at UTC midnight and at the range's ends, so a range is the sum of its
//! parts: the whole UTC days whose cells hold their folded visits (`rollups::visits_cell`,
//! `page_cell`), and the rest counted at report time: for the summary from people's
//! timelines (`moments`: postings, and the raw events of hours not folded yet), for the
//! pages from the raw events, which have the page. With `where=` filters, or a session gap
//! other than the folded one, the whole range is counted at report time, at most
//! `reports.max_raw_events` events.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::breakdown::{Breakdown, BreakdownAsk, Tally, every_filter};
use super::breakdown_raw::passes;
use super::gather::RawReading;
use super::moments::MomentsAsk;
use super::{ReportError, ReportScope, ReportService, plan, slots};
use crate::model::Event;
use crate::people::Person;
use crate::people::sessions::{FOLDED_GAP_MS, PAGE_VIEW_EVENT_TYPE, Step, VisitTally};
use crate::rollups::{
    ActorSketch, BreakdownQuery, CellName, Dimension, EXIT_PAGE, EncodedTable, HOURS_PER_DAY, Hour,
    LIVE_VALUE_CAP, PageStep, ValueTable, VisitCount, dimension_values, is_bot, page_cell,
    page_step, visits_cell,
};
use crate::store::{EventFilter, StoreError};

type Range = (DateTime<Utc>, DateTime<Utc>);

/// Whole UTC days answered by their folded visit cells, and each asked cell's tables.
struct FoldedDays {
    days: BTreeSet<Hour>,
    tables: Vec<Vec<EncodedTable>>,
}

impl ReportService {
    /// The visits of `scope`'s events passing `filters`, humans' (and bots' with
    /// `includeBots`); `None` when they would be counted from more than
    /// `reports.max_raw_events` raw events or moments.
    pub(super) async fn visit_tally(
        &self,
        scope: ReportScope,
        filters: &[(String, String)],
    ) -> Result<Option<VisitTally>, ReportError> {
        let mut tally = VisitTally::default();
        let mut rest = vec![(scope.from, scope.to)];
        if filters.is_empty() && self.session_gap_ms == FOLDED_GAP_MS {
            let names = partitions(scope)
                .iter()
                .map(|bots| visits_cell(scope.subsystem_id, *bots))
                .collect();
            let folded = self.folded_days(scope, names).await?;
            for table in folded.tables.into_iter().flatten() {
                let parts = table.parts().iter().map(Vec::as_slice);
                tally.merge(VisitTally::from_parts(parts).map_err(StoreError::Corrupt)?);
            }
            rest = outside(scope, &folded.days);
        }
        let types = self.store.event_types(scope.partner_id).await?;
        let mut read = 0u64;
        let (max, gap) = (self.max_raw_events, self.session_gap_ms);
        for range in rest {
            let mut timelines: HashMap<(bool, Person), Vec<PageStep>> = HashMap::new();
            let ask = MomentsAsk {
                types: &types,
                slot_filters: &[],
                filters,
                range,
                person: None,
            };
            let scope = ReportScope {
                from: range.0,
                to: range.1,
                ..scope
            };
            let gathered = self
                .gather_moments(scope, ask, &mut |person, slot, at, bot| {
                    read += 1;
                    if read <= max {
                        let page_view = (types[slot] == PAGE_VIEW_EVENT_TYPE).then_some(None);
                        let event_type = u32::try_from(slot).unwrap_or(u32::MAX);
                        let step = Step {
                            at,
                            event_type,
                            page_view,
                        };
                        timelines.entry((bot, person)).or_default().push(step);
                    }
                })
                .await;
            match gathered {
                Err(ReportError::TooManyRawEvents { .. }) => return Ok(None),
                other => other?,
            }
            if read > max {
                return Ok(None);
            }
            let mut count = VisitCount::default();
            for mut steps in timelines.into_values() {
                count.add_person(None, &mut steps, gap);
            }
            tally.merge(count.tally);
        }
        Ok(Some(tally))
    }

    /// The `entryPage` or `exitPage` breakdown: each page's visits (`events`) and people
    /// (`uniqueUsers`); `totalEvents` and `botEvents` count visits too.
    pub(super) async fn visit_pages(
        &self,
        scope: ReportScope,
        ask: &BreakdownAsk,
    ) -> Result<Breakdown, ReportError> {
        let as_of = self.as_of(scope.partner_id).await?;
        let declared = self.declared_dimensions(scope.partner_id).await?;
        let filters = every_filter(&ask.filters, ask.event_type.as_deref(), None, &declared)?;
        let _slot = self
            .slots
            .enter()
            .await
            .map_err(|slots::AllSlotsTaken| ReportError::Busy)?;
        let mut tally = Tally::default();
        let mut rest = vec![(scope.from, scope.to)];
        if filters.is_empty() && self.session_gap_ms == FOLDED_GAP_MS {
            // Both partitions: bots' visits are always answered (`botEvents`).
            let names: Vec<CellName> = [false, true]
                .into_iter()
                .flat_map(|bots| {
                    [
                        page_cell(&ask.dimension, scope.subsystem_id, bots),
                        visits_cell(scope.subsystem_id, bots),
                    ]
                })
                .collect();
            let folded = self.folded_days(scope, names).await?;
            for (index, tables) in folded.tables.into_iter().enumerate() {
                let bots = index >= 2;
                for table in tables {
                    if index % 2 == 0 {
                        tally.add_values(bots, table);
                    } else {
                        let parts = table.parts().iter().map(Vec::as_slice);
                        let visits = VisitTally::from_parts(parts).map_err(StoreError::Corrupt)?;
                        tally.add_events(bots, visits.visits);
                    }
                }
            }
            rest = outside(scope, &folded.days);
        }
        let exits = ask.dimension == EXIT_PAGE;
        let payload = filters
            .iter()
            .any(|(dimension, _)| matches!(dimension, Dimension::Property(_)));
        let mut left = self.max_raw_events;
        for range in rest {
            let mut timelines: HashMap<(bool, String), Vec<PageStep>> = HashMap::new();
            let mut types: HashMap<String, u32> = HashMap::new();
            let reading = RawReading {
                range,
                filter: &EventFilter::default(),
                payload,
                max_events: Some(left),
            };
            let mut read = 0u64;
            let keep = |event: &Event| {
                read += 1;
                if !filters.is_empty() && !passes(&filters, &dimension_values(event, &declared)) {
                    return;
                }
                // Read events come as their people (`for_each_event`).
                let Some(person) = event.actor() else {
                    return;
                };
                let next = u32::try_from(types.len()).unwrap_or(u32::MAX);
                let event_type = *types.entry(event.event_type.clone()).or_insert(next);
                let key = (is_bot(event), person.to_string());
                timelines
                    .entry(key)
                    .or_default()
                    .push(page_step(event, event_type));
            };
            self.for_each_event(scope, reading, keep)
                .await
                .map_err(|error| match error {
                    ReportError::TooManyRawEvents { max } => ReportError::Invalid {
                        field: "from",
                        message: format!(
                            "entry and exit pages are counted from raw events where no folded \
                             day holds them (the range's partial and current days, or all of \
                             it with where= filters), at most {max} (reports.max_raw_events), \
                             and this range holds more; use a shorter range"
                        ),
                    },
                    other => other,
                })?;
            left = left.saturating_sub(read);
            let mut counts = [VisitCount::default(), VisitCount::default()];
            for ((bots, person), mut steps) in timelines {
                let coupon = Some(ActorSketch::coupon(&person));
                counts[usize::from(bots)].add_person(coupon, &mut steps, self.session_gap_ms);
            }
            for (bots, count) in [false, true].into_iter().zip(counts) {
                tally.add_events(bots, count.tally.visits);
                let pages = if exits { count.exits } else { count.entries };
                let mut table = ValueTable::default();
                table
                    .absorb(&pages, LIVE_VALUE_CAP)
                    .expect("a new table has no stored sketch to decode");
                tally.add_values(bots, EncodedTable::from(&table));
            }
        }
        let (mut top, bot_events) = tally
            .finish(Dimension::Page, ask.limit, scope.include_bots)
            .map_err(StoreError::Corrupt)?;
        let mut items = Vec::with_capacity(top.items.len());
        for value in std::mem::take(&mut top.items) {
            items.push(self.item(Dimension::Page, value).await?);
        }
        Ok(Breakdown::of(
            &ask.dimension,
            items,
            &top,
            bot_events,
            as_of,
        ))
    }

    /// The whole UTC days of `scope`'s range that `names`' day cells answer, and their
    /// tables (per name, in order).
    async fn folded_days(
        &self,
        scope: ReportScope,
        names: Vec<CellName>,
    ) -> Result<FoldedDays, ReportError> {
        let plan = plan::plan(scope.from, scope.to, &[]);
        let (Some(first), Some(last)) = (plan.whole_days.first(), plan.whole_days.last()) else {
            return Ok(FoldedDays {
                days: BTreeSet::new(),
                tables: Vec::new(),
            });
        };
        let query = BreakdownQuery {
            partner_id: scope.partner_id,
            names,
            from: *first,
            to: Hour(last.0 + HOURS_PER_DAY),
            whole_days: plan.whole_days.clone(),
        };
        let read = self.store.breakdown_cells(&query).await?;
        // Only days: visits have no hour cells.
        let tables = read
            .tables
            .into_iter()
            .map(|tables| {
                tables
                    .into_iter()
                    .filter(|(hour, _)| read.days.contains(hour))
                    .map(|(_, table)| table)
                    .collect()
            })
            .collect();
        Ok(FoldedDays {
            days: read.days,
            tables,
        })
    }
}

/// The partitions a report counts: humans', and bots' with `includeBots`.
fn partitions(scope: ReportScope) -> &'static [bool] {
    if scope.include_bots {
        &[false, true]
    } else {
        &[false]
    }
}

/// The parts of `scope`'s range outside the whole UTC `days`.
fn outside(scope: ReportScope, days: &BTreeSet<Hour>) -> Vec<Range> {
    let mut rest = Vec::new();
    let mut start = scope.from;
    for day in days {
        let (day_start, day_end) = (day.start(), Hour(day.0 + HOURS_PER_DAY).start());
        if start < day_start {
            rest.push((start, day_start));
        }
        start = start.max(day_end);
    }
    if start < scope.to {
        rest.push((start, scope.to));
    }
    rest
}

//! Computing a breakdown: from the store's breakdown cells for the whole hours and days of
//! the range, plus the raw events of the hours they don't cover (the range's cut ends,
//! hours not folded yet); or, when its filters have no cells, from the raw events of the
//! whole range, at most `reports.max_raw_events` of them.

use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

use super::breakdown::{Breakdown, BreakdownAsk, BreakdownItem, Resolved, Tally};
use super::breakdown_raw::RawBreakdown;
use super::gather::RawReading;
use super::{ReportError, ReportScope, ReportService, plan, slots};
use crate::rollups::{BreakdownQuery, Dimension, ENTRY_PAGE, EXIT_PAGE, EncodedTable, TopValue};
use crate::store::{EventFilter, StoreError};

impl ReportService {
    pub(super) async fn compute_breakdown(
        &self,
        scope: ReportScope,
        ask: &BreakdownAsk,
    ) -> Result<Breakdown, ReportError> {
        if [ENTRY_PAGE, EXIT_PAGE].contains(&ask.dimension.as_str()) {
            return self.visit_pages(scope, ask).await;
        }
        let as_of = self.as_of(scope.partner_id).await?;
        let declared = self.declared_dimensions(scope.partner_id).await?;
        let resolved = Resolved::new(ask, scope.subsystem_id, declared)?;
        let _slot = self
            .slots
            .enter()
            .await
            .map_err(|slots::AllSlotsTaken| ReportError::Busy)?;
        let mut tally = Tally::default();
        if resolved.cell_filter().is_some() {
            self.tally_cells(scope, &resolved, &mut tally).await?;
        } else {
            let ranges = [(scope.from, scope.to)];
            self.tally_raw(
                scope,
                &resolved,
                &ranges,
                Some(self.max_raw_events),
                &mut tally,
            )
            .await?;
        }
        // Tens of milliseconds of CPU over a month of a large partner's cells: off the
        // runtime's workers, which serve every other request meanwhile.
        let (dimension, limit) = (resolved.dimension, ask.limit);
        let (mut top, bot_events) =
            tokio::task::spawn_blocking(move || tally.finish(dimension, limit, scope.include_bots))
                .await
                .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
                .map_err(StoreError::Corrupt)?;
        let mut items = Vec::with_capacity(top.items.len());
        for value in std::mem::take(&mut top.items) {
            items.push(self.item(resolved.dimension, value).await?);
        }
        Ok(Breakdown::of(
            &ask.dimension,
            items,
            &top,
            bot_events,
            as_of,
        ))
    }

    /// Whole hours and days from the cells (both partitions: the bots' totals are always
    /// answered), the rest raw.
    async fn tally_cells(
        &self,
        scope: ReportScope,
        resolved: &Resolved,
        tally: &mut Tally,
    ) -> Result<(), ReportError> {
        let plan = plan::plan(scope.from, scope.to, &[]);
        let total = resolved.total_dimension();
        // A breakdown by bot counts the partitions of the totals' cells.
        let values = match resolved.dimension {
            Dimension::Bot => total,
            dimension => dimension,
        };
        let mut unsettled = BTreeSet::new();
        if let Some((from, to)) = plan.rollups {
            // Bots' values count only with `includeBots` (or by `bot`); their totals are
            // always answered (`botEvents`).
            let bot_values = scope.include_bots || resolved.dimension == Dimension::Bot;
            let mut cells = Vec::new();
            for bots in [false, true] {
                let dimensions = if bots && !bot_values {
                    BTreeSet::from([total])
                } else {
                    BTreeSet::from([values, total])
                };
                cells.extend(dimensions.into_iter().map(|dimension| (bots, dimension)));
            }
            let names = cells.iter().map(|(bots, dimension)| {
                (resolved.cell_name(*dimension, *bots)).expect("a breakdown with cells names them")
            });
            let query = BreakdownQuery {
                partner_id: scope.partner_id,
                names: names.collect(),
                from,
                to,
                whole_days: plan.whole_days.clone(),
            };
            let read = self.store.breakdown_cells(&query).await?;
            unsettled = read.unsettled;
            for ((bots, dimension), tables) in cells.into_iter().zip(read.tables) {
                for (_, table) in tables {
                    if dimension == total {
                        let view = table.view().map_err(StoreError::Corrupt)?;
                        tally.add_events(bots, view.total_events());
                    }
                    if dimension == values {
                        tally.add_values(bots, table);
                    }
                }
            }
        }
        let raw_hours = plan.raw_hours(&unsettled);
        if raw_hours > self.max_raw_hours {
            return Err(ReportError::Unfolded {
                hours: unsettled.len(),
            });
        }
        self.tally_raw(scope, resolved, &plan.raw_with(&unsettled), None, tally)
            .await
    }

    /// Counts the raw events of `ranges`, failing past `max_events` of them.
    async fn tally_raw(
        &self,
        scope: ReportScope,
        resolved: &Resolved,
        ranges: &[(DateTime<Utc>, DateTime<Utc>)],
        max_events: Option<u64>,
        tally: &mut Tally,
    ) -> Result<(), ReportError> {
        let mut raw = RawBreakdown::new(
            resolved.dimension,
            resolved.filters.clone(),
            resolved.declared.clone(),
        );
        let event_type = resolved
            .filters
            .iter()
            .find(|(dimension, _)| *dimension == Dimension::EventType)
            .map(|(_, name)| name.clone());
        let filter = EventFilter {
            event_type,
            ..EventFilter::default()
        };
        for range in ranges {
            let reading = RawReading {
                range: *range,
                filter: &filter,
                payload: raw.needs_payload(),
                max_events,
            };
            self.for_each_event(scope, reading, |event| raw.add(event))
                .await?;
        }
        let [humans, bots] = raw.totals();
        tally.add_events(false, humans);
        tally.add_events(true, bots);
        let [humans, bots] = raw.into_tables();
        tally.add_values(false, EncodedTable::from(&humans));
        tally.add_values(true, EncodedTable::from(&bots));
        Ok(())
    }

    /// One listed value; a subsystem with its code and name.
    pub(super) async fn item(
        &self,
        dimension: Dimension,
        top: TopValue,
    ) -> Result<BreakdownItem, ReportError> {
        let mut item = BreakdownItem {
            value: top.value,
            events: top.events,
            unique_users: top.unique_users,
            code: None,
            name: None,
            error: (top.error > 0).then_some(top.error),
        };
        if dimension == Dimension::Subsystem
            && let Ok(id) = item.value.parse()
            && let Some(subsystem) = self.directory.subsystem(id).await?
        {
            item.code = Some(subsystem.code.as_str().to_string());
            item.name = Some(subsystem.name.clone());
        }
        Ok(item)
    }
}

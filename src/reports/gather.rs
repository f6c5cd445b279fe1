//! Reading a report's data: the scope's whole hours from the store's rollups, and from
//! raw events the hours the range's ends or bucket edges cut and those the rollups don't
//! cover yet (`plan`), under a compute slot and within `max_raw_hours`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{Aggregate, ReportError, ReportScope, ReportService, plan, slots};
use crate::model::Event;
use crate::rollups::{RollupQuery, RollupRead};
use crate::store::{EventFilter, EventQuery, StoreError};

const PAGE_SIZE: usize = 1_000;

impl ReportService {
    /// Feeds `sink` the scope's whole hours from rollups, and from raw events the hours
    /// the range's ends or `edges` cut and those the rollups don't cover yet, holding a
    /// compute slot while it reads.
    pub(super) async fn gather(
        &self,
        scope: ReportScope,
        filter: EventFilter,
        edges: &[DateTime<Utc>],
        sink: &mut impl Aggregate,
    ) -> Result<(), ReportError> {
        let plan = plan::plan(scope.from, scope.to, edges);
        let cut_hours = plan.raw_hours(&BTreeSet::new());
        if cut_hours > self.max_raw_hours {
            return Err(ReportError::TooManyRawHours {
                hours: cut_hours,
                max: self.max_raw_hours,
            });
        }
        let _slot = self
            .slots
            .enter()
            .await
            .map_err(|slots::AllSlotsTaken| ReportError::Busy)?;
        let rollups = match plan.rollups {
            Some((from, to)) => {
                let query = RollupQuery {
                    partner_id: scope.partner_id,
                    subsystem_id: scope.subsystem_id,
                    event_type: filter.event_type.clone(),
                    from,
                    to,
                    whole_days: plan.whole_days.clone(),
                    include_bots: scope.include_bots,
                };
                self.store.hourly_rollups(&query).await?
            }
            None => RollupRead::default(),
        };
        let raw_hours = plan.raw_hours(&rollups.unsettled);
        if raw_hours > self.max_raw_hours {
            return Err(ReportError::Unfolded {
                hours: rollups.unsettled.len(),
            });
        }
        rollups
            .hours
            .iter()
            .filter(|rollup| {
                !plan.cut.contains(&rollup.hour) && !rollups.unsettled.contains(&rollup.hour)
            })
            .for_each(|rollup| sink.add_rollup(rollup));
        for range in plan.raw_with(&rollups.unsettled) {
            self.for_each_event(scope, range, &filter, |event| {
                if scope.counts(event) {
                    sink.add(event)
                }
            })
            .await?;
        }
        Ok(())
    }

    async fn for_each_event(
        &self,
        scope: ReportScope,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        filter: &EventFilter,
        mut visit: impl FnMut(&Event),
    ) -> Result<(), StoreError> {
        let mut query = EventQuery {
            scope: scope.event_scope(),
            from,
            to,
            filter: filter.clone(),
            limit: PAGE_SIZE,
            cursor: None,
            with_payload: false,
        };
        loop {
            let page = self.store.query_events(&query).await?;
            page.items.iter().for_each(&mut visit);
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(()),
            }
        }
    }
}

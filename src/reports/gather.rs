//! Reading a report's data: the scope's whole hours from the store's rollups, and from
//! raw events the hours the range's ends or bucket edges cut and those the rollups don't
//! cover yet (`plan`), under a compute slot and within `max_raw_hours`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{Aggregate, ReportError, ReportScope, ReportService, plan, slots};
use crate::model::Event;
use crate::people::anonymous_ids;
use crate::rollups::{RollupQuery, RollupRead};
use crate::store::{EventFilter, EventQuery, StoreError};

/// One stretch of raw events to read: its range, the store's filter, whether the payload
/// is needed (a property is read), and how many events may be read at most.
pub(super) struct RawReading<'a> {
    pub range: (DateTime<Utc>, DateTime<Utc>),
    pub filter: &'a EventFilter,
    pub payload: bool,
    pub max_events: Option<u64>,
}

const PAGE_SIZE: usize = 1_000;

impl ReportService {
    /// The properties the partner declared as dimensions.
    pub(super) async fn declared_dimensions(
        &self,
        partner: uuid::Uuid,
    ) -> Result<Vec<String>, ReportError> {
        let partner = self.directory.partner(partner).await?;
        let partner = partner.ok_or_else(|| ReportError::from(StoreError::NotFound))?;
        Ok(partner.dimensions.clone())
    }

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
            let reading = RawReading {
                range,
                filter: &filter,
                payload: false,
                max_events: None,
            };
            self.for_each_event(scope, reading, |event| {
                if scope.counts(event) {
                    sink.add(event)
                }
            })
            .await?;
        }
        Ok(())
    }

    /// Visits the raw events of one reading, page by page, each as its person.
    pub(super) async fn for_each_event(
        &self,
        scope: ReportScope,
        reading: RawReading<'_>,
        mut visit: impl FnMut(&Event),
    ) -> Result<(), ReportError> {
        let mut query = EventQuery {
            scope: scope.event_scope(),
            from: reading.range.0,
            to: reading.range.1,
            filter: reading.filter.clone(),
            limit: PAGE_SIZE,
            cursor: None,
            with_payload: reading.payload,
        };
        let mut read = 0u64;
        loop {
            let mut page = self.store.query_events(&query).await?;
            read += page.items.len() as u64;
            if let Some(max) = reading.max_events.filter(|max| read > *max) {
                return Err(ReportError::TooManyRawEvents { max });
            }
            // Reports count people: each event as its person (the joins of the page's
            // anonymous ids), as the folds count them.
            let anonymous = anonymous_ids(&page.items);
            if !anonymous.is_empty() {
                let joins = self.store.joins_among(scope.partner_id, anonymous).await?;
                page.items.iter_mut().for_each(|event| joins.resolve(event));
            }
            page.items.iter().for_each(&mut visit);
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(()),
            }
        }
    }
}

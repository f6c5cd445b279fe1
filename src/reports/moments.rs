//! People's moments for funnels and retention: each event of the wanted types that passes
//! the report's filters, as (person, type slot, time). People are joined as the store's
//! joins say (`people::Joins`), so an anonymous visitor who signed in later is one person
//! with their earlier events.
//!
//! Read from raw events, bounded by `reports.max_raw_events`.

use chrono::{DateTime, Utc};

use super::breakdown::resolve_filters;
use super::breakdown_raw::passes;
use super::gather::RawReading;
use super::{ReportError, ReportScope, ReportService};
use crate::people::{Moment, Person};
use crate::rollups::{Dimension, dimension_values};
use crate::store::EventFilter;

/// What to gather: the event types (one slot each, in order), the `where=` filters, and
/// the range of event times.
pub(super) struct MomentsAsk<'a> {
    pub types: &'a [String],
    pub filters: &'a [(String, String)],
    pub range: (DateTime<Utc>, DateTime<Utc>),
}

impl ReportService {
    pub(super) async fn moments(
        &self,
        scope: ReportScope,
        ask: MomentsAsk<'_>,
    ) -> Result<Vec<(Person, usize, Moment)>, ReportError> {
        let declared = self.declared_dimensions(scope.partner_id).await?;
        let filters = resolve_filters(ask.filters, &declared)?;
        let joins = self.store.joins(scope.partner_id).await?;
        let payload = filters
            .iter()
            .any(|(dimension, _)| matches!(dimension, Dimension::Property(_)));
        // One type: the store filters it; several: every event of the range is read.
        let filter = EventFilter {
            event_type: match ask.types {
                [only] => Some(only.clone()),
                _ => None,
            },
            ..EventFilter::default()
        };
        let reading = RawReading {
            range: ask.range,
            filter: &filter,
            payload,
            max_events: Some(self.max_raw_events),
        };
        let mut moments = Vec::new();
        self.for_each_event(scope, reading, |event| {
            if !scope.counts(event) {
                return;
            }
            let Some(slot) = ask.types.iter().position(|t| *t == event.event_type) else {
                return;
            };
            if !filters.is_empty() && !passes(&filters, &dimension_values(event, &declared)) {
                return;
            }
            if let Some(person) = joins.person_of(event) {
                moments.push((person, slot, event.timestamp.timestamp_millis()));
            }
        })
        .await
        .map_err(|error| match error {
            // No filter is to blame here: the range (and for retention the history) is.
            ReportError::TooManyRawEvents { max } => ReportError::Invalid {
                field: "from",
                message: format!(
                    "funnels and retention are counted from raw events, at most {max}                      (reports.max_raw_events), and this range holds more; use a shorter range"
                ),
            },
            other => other,
        })?;
        Ok(moments)
    }
}

//! People's moments for funnels and retention: each event of the wanted types that passes
//! the report's filters, as (person, type slot, time).
//!
//! Without `where=` filters they come from people's postings (`people::postings`, folded
//! with the breakdown cells, people resolved through their joins) for the range's whole
//! hours and days, and from the raw events of the rest: the range's cut ends and the hours
//! not folded since their last write (a late join marks the hours it changes). With
//! filters, which postings don't keep, from the raw events of the whole range, at most
//! `reports.max_raw_events` of them. Raw events are read as their people.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::breakdown::resolve_filters;
use super::breakdown_raw::passes;
use super::gather::RawReading;
use super::{ReportError, ReportScope, ReportService, plan};
use crate::model::Event;
use crate::people::postings;
use crate::people::{Moment, Person, person_key};
use crate::rollups::{BreakdownQuery, Dimension, dimension_values, is_bot, postings_cell};
use crate::store::{EventFilter, StoreError};

/// What to gather: the event types (one slot each, in order), each slot's own filters (a
/// funnel step's `stepWhere=`; empty, or one list per slot), the `where=` filters, the
/// range of event times, and whether only one person's moments are wanted (the others
/// may still be visited; a person's lookup reads only their span of each posting part).
pub(super) struct MomentsAsk<'a> {
    pub types: &'a [String],
    pub slot_filters: &'a [Vec<(String, String)>],
    pub filters: &'a [(String, String)],
    pub range: (DateTime<Utc>, DateTime<Utc>),
    pub person: Option<Person>,
}

impl MomentsAsk<'_> {
    fn slot_filters(&self, slot: usize) -> &[(String, String)] {
        self.slot_filters.get(slot).map_or(&[], Vec::as_slice)
    }

    /// Which slots postings can serve: those without filters of their own.
    fn plain_slots(&self) -> Vec<bool> {
        (0..self.types.len())
            .map(|slot| self.slot_filters(slot).is_empty())
            .collect()
    }
}

/// Where each moment goes, as (person, slot, time, whether a bot's): a report keeps only
/// what it needs (a funnel every moment, retention first starts and returning periods,
/// visits each person's timeline).
pub(super) type Visit<'a> = &'a mut (dyn FnMut(Person, usize, Moment, bool) + Send);

/// Ranges of event times.
type Ranges<'a> = &'a [(DateTime<Utc>, DateTime<Utc>)];

impl ReportService {
    /// The moments of `ask`; past `reports.max_raw_events` raw events (with filters), a
    /// 400 naming `from`.
    pub(super) async fn moments(
        &self,
        scope: ReportScope,
        ask: MomentsAsk<'_>,
        visit: Visit<'_>,
    ) -> Result<(), ReportError> {
        self.gather_moments(scope, ask, visit)
            .await
            .map_err(|error| match error {
                // No filter is to blame here: the range (and for retention the history) is.
                ReportError::TooManyRawEvents { max } => ReportError::Invalid {
                    field: "from",
                    message: format!(
                        "reports over people with where= filters are counted from raw events, \
                         at most {max} (reports.max_raw_events), and this range holds more; \
                         use a shorter range"
                    ),
                },
                other => other,
            })
    }

    /// `moments`, past the raw event bound a `TooManyRawEvents`.
    pub(super) async fn gather_moments(
        &self,
        scope: ReportScope,
        ask: MomentsAsk<'_>,
        visit: Visit<'_>,
    ) -> Result<(), ReportError> {
        let all = [ask.range];
        let plain = ask.plain_slots();
        if !ask.filters.is_empty() {
            let every = vec![true; plain.len()];
            return self
                .raw_moments(
                    scope,
                    &ask,
                    (&all, &every),
                    Some(self.max_raw_events),
                    visit,
                )
                .await;
        }
        // Slots with filters of their own: from the raw events of their type, as `where=`.
        let filtered: Vec<bool> = plain.iter().map(|plain| !plain).collect();
        if filtered.contains(&true) {
            self.raw_moments(
                scope,
                &ask,
                (&all, &filtered),
                Some(self.max_raw_events),
                visit,
            )
            .await?;
        }
        let plan = plan::plan(ask.range.0, ask.range.1, &[]);
        let mut unsettled = BTreeSet::new();
        let read_slots: Vec<usize> = (0..plain.len()).filter(|slot| plain[*slot]).collect();
        if let (Some((from, to)), false) = (plan.rollups, read_slots.is_empty()) {
            let query = BreakdownQuery {
                partner_id: scope.partner_id,
                names: read_slots
                    .iter()
                    .map(|slot| postings_cell(&ask.types[*slot], scope.subsystem_id))
                    .collect(),
                from,
                to,
                whole_days: plan.whole_days.clone(),
            };
            let read = self.store.breakdown_cells(&query).await?;
            unsettled = read.unsettled;
            for (cells, slot) in read.tables.into_iter().zip(read_slots) {
                for (hour, cell) in cells {
                    // An hour's or a day's (by its first hour): offsets from its start.
                    let start = hour.start().timestamp_millis();
                    for part in cell.parts() {
                        let part = match ask.person {
                            Some(person) => {
                                postings::span_of(part, person).map_err(StoreError::Corrupt)?
                            }
                            None => part,
                        };
                        for posting in postings::decode(part).map_err(StoreError::Corrupt)? {
                            if scope.include_bots || !posting.bot {
                                let at = start + i64::from(posting.offset_ms);
                                visit(posting.person, slot, at, posting.bot);
                            }
                        }
                    }
                }
            }
        }
        if plan.raw_hours(&unsettled) > self.max_raw_hours {
            return Err(ReportError::Unfolded {
                hours: unsettled.len(),
            });
        }
        let raw = plan.raw_with(&unsettled);
        self.raw_moments(scope, &ask, (&raw, &plain), None, visit)
            .await
    }

    /// The moments of the `wanted` slots in the raw events of `ranges` (at most
    /// `max_events` read), people joined through the joins of their anonymous ids.
    async fn raw_moments(
        &self,
        scope: ReportScope,
        ask: &MomentsAsk<'_>,
        (ranges, wanted): (Ranges<'_>, &[bool]),
        max_events: Option<u64>,
        visit: Visit<'_>,
    ) -> Result<(), ReportError> {
        if ranges.is_empty() || !wanted.contains(&true) {
            return Ok(());
        }
        let declared = self.declared_dimensions(scope.partner_id).await?;
        let filters = resolve_filters(ask.filters, &declared)?;
        let slot_filters = (0..ask.types.len())
            .map(|slot| resolve_filters(ask.slot_filters(slot), &declared))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| error.naming("stepWhere"))?;
        let payload = filters
            .iter()
            .chain(slot_filters.iter().flatten())
            .any(|(dimension, _)| matches!(dimension, Dimension::Property(_)));
        // One type: the store filters it; several: every event of the range is read.
        let types: BTreeSet<&String> = (0..ask.types.len())
            .filter(|slot| wanted[*slot])
            .map(|slot| &ask.types[slot])
            .collect();
        let filter = EventFilter {
            event_type: match types.into_iter().collect::<Vec<_>>()[..] {
                [only] => Some(only.clone()),
                _ => None,
            },
            ..EventFilter::default()
        };
        let mut keep = |event: &Event| {
            if !scope.counts(event) {
                return;
            }
            // Read events come as their people (`for_each_event`).
            let Some(person) = event.actor() else {
                return;
            };
            let mut values = None;
            let mut passes_all = |filters: &[(Dimension, String)]| {
                filters.is_empty()
                    || passes(
                        filters,
                        values.get_or_insert_with(|| dimension_values(event, &declared)),
                    )
            };
            if !passes_all(&filters) {
                return;
            }
            for (slot, event_type) in ask.types.iter().enumerate() {
                if wanted[slot]
                    && *event_type == event.event_type
                    && passes_all(&slot_filters[slot])
                {
                    let at = event.timestamp.timestamp_millis();
                    visit(person_key(person), slot, at, is_bot(event));
                }
            }
        };
        for range in ranges {
            let reading = RawReading {
                range: *range,
                filter: &filter,
                payload,
                max_events,
            };
            self.for_each_event(scope, reading, &mut keep).await?;
        }
        Ok(())
    }
}

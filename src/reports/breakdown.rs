//! `GET /api/v1/reports/breakdown`: what it asks, what it answers, and how the cells of a
//! range add up to the answer (docs/BREAKDOWNS.md). Where the cells come from (the
//! store's breakdown cells, or raw events) is `breakdown_gather`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ReportError;
use crate::rollups::{BreakdownRange, CellName, Dimension, EncodedTable, TopValues};

/// The most values one breakdown lists.
pub const MAX_LIMIT: usize = 1_000;

/// What a breakdown asks, as given (names are checked against the partner's declared
/// dimensions when it is computed).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct BreakdownAsk {
    pub dimension: String,
    pub limit: usize,
    pub event_type: Option<String>,
    /// The `where=` filters: (key, value), each exact, all at once.
    pub filters: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = BreakdownReport)]
pub struct Breakdown {
    pub dimension: String,
    /// By `events`, descending (ties by value).
    pub items: Vec<BreakdownItem>,
    /// Events with a value for the dimension beyond the listed ones.
    pub other_events: u64,
    /// Distinct values beyond the listed ones (estimated once values were folded).
    pub other_values: u64,
    /// Events in the range that pass the filters (bots' only with `includeBots`), with a
    /// value for the dimension or not (a direct visit has no referrer).
    pub total_events: u64,
    /// Events classified as bots that pass the filters (counted, left out by default).
    pub bot_events: u64,
    pub data_as_of: DateTime<Utc>,
}

impl Breakdown {
    /// The answer of `items` (the top values, listed), with `top`'s totals.
    pub fn of(
        dimension: &str,
        items: Vec<BreakdownItem>,
        top: &TopValues,
        bot_events: u64,
        data_as_of: DateTime<Utc>,
    ) -> Breakdown {
        Breakdown {
            dimension: dimension.to_string(),
            items,
            other_events: top.other_events,
            other_values: top.other_values,
            total_events: top.total_events,
            bot_events,
            data_as_of,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakdownItem {
    pub value: String,
    pub events: u64,
    /// Estimated from sketches (HyperLogLog, ≤ 2% error).
    pub unique_users: u64,
    /// For `dimension=subsystem`: the subsystem's code and name beside its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Present when the value was folded into "other" in some hours (past the per-hour
    /// cap of distinct values): a recount could find up to this many more events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<u64>,
}

/// A breakdown with its names resolved: the dimension, every filter (`where=`, then
/// `eventType=` and the scope's subsystem), and the partner's declared properties.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub dimension: Dimension,
    pub filters: Vec<(Dimension, String)>,
    pub declared: Vec<String>,
}

impl Resolved {
    /// Checks `ask` against the dimensions the partner has: an unknown `dimension` or
    /// `where` key is a 400 naming it.
    pub fn new(
        ask: &BreakdownAsk,
        subsystem: Option<Uuid>,
        declared: Vec<String>,
    ) -> Result<Resolved, ReportError> {
        let dimension = Dimension::parse(&ask.dimension, &declared)
            .ok_or_else(|| not_a_dimension("dimension", &ask.dimension))?;
        let filters = every_filter(
            &ask.filters,
            ask.event_type.as_deref(),
            subsystem,
            &declared,
        )?;
        Ok(Resolved {
            dimension,
            filters,
            declared,
        })
    }

    /// The one filter the cells are kept under, when this breakdown has cells
    /// (`answered_by_rollups`): `Some(None)` unfiltered.
    pub fn cell_filter(&self) -> Option<Option<&(Dimension, String)>> {
        let filter = match self.filters.as_slice() {
            [] => None,
            [one] => Some(one),
            _ => return None,
        };
        crate::rollups::answered_by_rollups(filter.map(|(dimension, _)| *dimension), self.dimension)
            .then_some(filter)
    }

    /// The dimension whose cells hold every event passing the filter (every event has an
    /// event type; under an event type filter, a subsystem): its totals are the events.
    pub fn total_dimension(&self) -> Dimension {
        let filter = self.cell_filter().flatten();
        crate::rollups::total_dimension(filter.map(|(dimension, _)| *dimension))
    }

    /// The stored name of `dimension`'s cell in one partition under the cell filter.
    pub fn cell_name(&self, dimension: Dimension, bots: bool) -> Option<CellName> {
        let filter = match self.cell_filter()? {
            Some((filter, value)) => Some((filter.name(&self.declared)?, value.clone())),
            None => None,
        };
        Some(CellName {
            bots,
            filter,
            dimension: dimension.name(&self.declared)?,
        })
    }
}

/// A report's filters by dimension: its `where=` ones, then its `eventType=` and its
/// scope's subsystem, in order and once each.
pub fn every_filter(
    filters: &[(String, String)],
    event_type: Option<&str>,
    subsystem: Option<Uuid>,
    declared: &[String],
) -> Result<Vec<(Dimension, String)>, ReportError> {
    let mut filters = resolve_filters(filters, declared)?;
    filters.extend(event_type.map(|name| (Dimension::EventType, name.to_string())));
    filters.extend(subsystem.map(|id| (Dimension::Subsystem, id.to_string())));
    filters.sort();
    filters.dedup();
    Ok(filters)
}

/// `where=` filters by dimension: an unknown key is a 400 naming `where`.
pub fn resolve_filters(
    filters: &[(String, String)],
    declared: &[String],
) -> Result<Vec<(Dimension, String)>, ReportError> {
    filters
        .iter()
        .map(|(key, value)| {
            let dimension =
                Dimension::parse(key, declared).ok_or_else(|| not_a_dimension("where", key))?;
            Ok((dimension, value.clone()))
        })
        .collect()
}

fn not_a_dimension(field: &'static str, name: &str) -> ReportError {
    ReportError::Invalid {
        field,
        message: format!(
            "'{name}' is not a dimension: use eventType, subsystem, page, referrerHost, \
             utmSource, utmMedium, utmCampaign, browser, os, deviceType, country, bot, valid, \
             properties.<name> for a declared property, or (to break down by) entryPage or \
             exitPage"
        ),
    }
}

/// The cells of a range, per partition (humans `[0]`, bots `[1]`): the dimension's values,
/// and the events passing the filters.
#[derive(Debug, Default)]
pub struct Tally {
    values: [BreakdownRange; 2],
    totals: [u64; 2],
}

impl Tally {
    pub fn add_values(&mut self, bots: bool, table: EncodedTable) {
        self.values[usize::from(bots)].add(table);
    }

    pub fn add_events(&mut self, bots: bool, events: u64) {
        self.totals[usize::from(bots)] += events;
    }

    /// The answer's numbers: the top `limit` values of the partitions counted (bots' with
    /// `include_bots`), totals, and the bots' events. A breakdown by `bot` lists both
    /// partitions, whose values are then the events of every type.
    pub fn finish(
        self,
        dimension: Dimension,
        limit: usize,
        include_bots: bool,
    ) -> Result<(TopValues, u64), String> {
        let [humans, bots] = self.values;
        let bot_events = self.totals[1];
        if dimension == Dimension::Bot {
            let mut items = Vec::new();
            for (value, range) in [("false", &humans), ("true", &bots)] {
                let events = range.total_events()?;
                if events > 0 {
                    items.push(crate::rollups::TopValue {
                        value: value.to_string(),
                        events,
                        unique_users: range.unique_actors()?,
                        error: 0,
                    });
                }
            }
            items.sort_by(|a, b| b.events.cmp(&a.events).then(a.value.cmp(&b.value)));
            let total_events = self.totals[0] + bot_events;
            let listed = items.len().min(limit);
            let other_values = (items.len() - listed) as u64;
            let other_events = items[listed..].iter().map(|item| item.events).sum();
            items.truncate(listed);
            let top = TopValues {
                items,
                other_events,
                other_values,
                total_events,
            };
            return Ok((top, bot_events));
        }
        let mut counted = humans;
        if include_bots {
            counted.merge(bots);
        }
        let mut top = counted.top(limit)?;
        top.total_events = self.totals[0] + if include_bots { bot_events } else { 0 };
        Ok((top, bot_events))
    }
}

//! A breakdown over a range: the stored cells of its hours and days merged, and the top
//! values with their unique users, what `GET /api/v1/reports/breakdown` answers.

use std::collections::HashMap;

use super::ActorUnion;
use super::value_table::{ValueTable, decode};

/// One value of the answer. `error` bounds how many more events a recount could find
/// (events it had in cells where it was folded into "other"): 0 means exact.
#[derive(Debug, Clone, PartialEq)]
pub struct TopValue {
    pub value: String,
    pub events: u64,
    pub unique_users: u64,
    pub error: u64,
}

/// `{items, otherEvents, otherValues, totalEvents}` of the breakdown response.
#[derive(Debug, Clone, PartialEq)]
pub struct TopValues {
    pub items: Vec<TopValue>,
    pub other_events: u64,
    pub other_values: u64,
    pub total_events: u64,
}

#[derive(Debug, Default)]
struct Totals {
    events: u64,
    error: u64,
    /// The `max_events` of the cells that kept it: the rest of the range's bound applies.
    kept_where_folding: u64,
    /// Where its actors are: indexes into `cells`.
    cells: Vec<usize>,
}

/// Cells of one dimension under one filter (and partition) over a range, merged. Adding
/// cells is commutative: the answer does not depend on their order.
#[derive(Debug, Default)]
pub struct BreakdownRange {
    cells: Vec<ValueTable>,
    values: HashMap<String, Totals>,
    other_events: u64,
    /// The sum of the cells' `max_events`: a bound on the events of a value in the cells
    /// that did not keep it.
    folded_bound: u64,
}

impl BreakdownRange {
    /// Adds one stored cell (an hour, a day, or the bot partition's same cell).
    pub fn add(&mut self, cell: ValueTable) {
        let index = self.cells.len();
        self.other_events += cell.other.events;
        self.folded_bound += cell.other.max_events;
        for (value, kept) in &cell.values {
            let totals = match self.values.get_mut(value.as_str()) {
                Some(totals) => totals,
                None => self.values.entry(value.clone()).or_default(),
            };
            totals.events += kept.events;
            totals.error += kept.error;
            totals.kept_where_folding += cell.other.max_events;
            totals.cells.push(index);
        }
        self.cells.push(cell);
    }

    pub fn total_events(&self) -> u64 {
        self.values
            .values()
            .map(|totals| totals.events)
            .sum::<u64>()
            + self.other_events
    }

    /// The `limit` values with the most events (ties by value), with unique users from
    /// their sketches, and what the rest adds up to. `otherValues` is exact while no cell
    /// folded anything, else estimated from the folded values' sketches. Fails on a
    /// stored sketch that does not decode.
    pub fn top(&self, limit: usize) -> Result<TopValues, String> {
        let mut ordered: Vec<(&String, &Totals)> = self.values.iter().collect();
        ordered.sort_unstable_by(|a, b| b.1.events.cmp(&a.1.events).then(a.0.cmp(b.0)));
        ordered.truncate(limit);
        let items = ordered
            .into_iter()
            .map(|(value, totals)| {
                Ok(TopValue {
                    value: value.clone(),
                    events: totals.events,
                    unique_users: self.unique_users(value, totals)?,
                    error: totals.error + (self.folded_bound - totals.kept_where_folding),
                })
            })
            .collect::<Result<Vec<TopValue>, String>>()?;
        let total_events = self.total_events();
        let listed: u64 = items.iter().map(|item| item.events).sum();
        let distinct = self.distinct_values()?.max(self.values.len() as u64);
        Ok(TopValues {
            other_events: total_events - listed,
            other_values: distinct.saturating_sub(items.len() as u64),
            total_events,
            items,
        })
    }

    fn unique_users(&self, value: &str, totals: &Totals) -> Result<u64, String> {
        let mut union = ActorUnion::default();
        for index in &totals.cells {
            union.add_sketch(&decode(&self.cells[*index].values[value].actors)?);
        }
        Ok(union.count())
    }

    fn distinct_values(&self) -> Result<u64, String> {
        let folded: Vec<&Vec<u8>> = self
            .cells
            .iter()
            .map(|cell| &cell.other.values)
            .filter(|values| !values.is_empty())
            .collect();
        if folded.is_empty() {
            return Ok(self.values.len() as u64);
        }
        let mut union = ActorUnion::default();
        for values in folded {
            union.add_sketch(&decode(values)?);
        }
        self.values.keys().for_each(|value| union.add_actor(value));
        Ok(union.count())
    }
}

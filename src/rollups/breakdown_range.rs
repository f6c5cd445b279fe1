//! A breakdown over a range: the stored cells of its hours and days merged, and the top
//! values with their unique users, what `GET /api/v1/reports/breakdown` answers.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use super::encoded_table::{EncodedTable, TableView};
use super::{ActorSketch, ActorUnion};

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
}

/// Cells of one dimension under one filter (and partition) over a range, merged. Adding
/// cells is commutative: the answer does not depend on their order. Cells stay encoded
/// until the answer is taken, which reads them in place and decodes only the sketches of
/// the values it lists.
#[derive(Debug, Default)]
pub struct BreakdownRange {
    cells: Vec<EncodedTable>,
}

impl BreakdownRange {
    /// Adds one stored cell (an hour, a day, or the bot partition's same cell).
    pub fn add(&mut self, cell: EncodedTable) {
        self.cells.push(cell);
    }

    /// Adds every cell of `other` (another partition's, say).
    pub fn merge(&mut self, other: BreakdownRange) {
        self.cells.extend(other.cells);
    }

    /// Fails on a stored cell that does not decode.
    pub fn total_events(&self) -> Result<u64, String> {
        Ok(self.views()?.iter().map(TableView::total_events).sum())
    }

    /// The `limit` values with the most events (ties by value), with unique users from
    /// their sketches, and what the rest adds up to. `otherValues` is exact while no cell
    /// folded anything, else estimated from the folded values' sketches. Fails on a
    /// stored cell or sketch that does not decode.
    pub fn top(&self, limit: usize) -> Result<TopValues, String> {
        let views = self.views()?;
        // Tens of thousands of lookups a read: a fast hasher (SipHash was a tenth of it).
        let mut values: HashMap<&str, Totals, RandomState> = HashMap::default();
        let (mut other_events, mut folded_bound) = (0, 0);
        for view in &views {
            other_events += view.other.events;
            // A bound on the events of a value in the cells that did not keep it.
            folded_bound += view.other.max_events;
            for (value, kept) in &view.values {
                let totals = values.entry(value).or_default();
                totals.events += kept.events;
                totals.error += kept.error;
                totals.kept_where_folding += view.other.max_events;
            }
        }
        let total_events = values.values().map(|totals| totals.events).sum::<u64>() + other_events;
        let mut ordered: Vec<(&str, &Totals)> = values
            .iter()
            .map(|(value, totals)| (*value, totals))
            .collect();
        let by_events = |a: &(&str, &Totals), b: &(&str, &Totals)| {
            b.1.events.cmp(&a.1.events).then(a.0.cmp(b.0))
        };
        // The top `limit` of thousands: selected, then only they are sorted.
        if limit < ordered.len() {
            ordered.select_nth_unstable_by(limit, by_events);
            ordered.truncate(limit);
        }
        ordered.sort_unstable_by(by_events);
        let listed: Vec<&str> = ordered.iter().map(|(value, _)| *value).collect();
        let users = unique_users(&views, &listed)?;
        let items: Vec<TopValue> = ordered
            .into_iter()
            .zip(users)
            .map(|((value, totals), unique_users)| TopValue {
                value: value.to_string(),
                events: totals.events,
                unique_users,
                error: totals.error + (folded_bound - totals.kept_where_folding),
            })
            .collect();
        let listed: u64 = items.iter().map(|item| item.events).sum();
        let distinct = distinct_values(&views, values.keys().copied())?.max(values.len() as u64);
        Ok(TopValues {
            other_events: total_events - listed,
            other_values: distinct.saturating_sub(items.len() as u64),
            total_events,
            items,
        })
    }

    /// The distinct actors of every value kept in any cell: the people behind the events
    /// of a dimension every event has (`eventType`), short of those only in folded values.
    pub fn unique_actors(&self) -> Result<u64, String> {
        let views = self.views()?;
        let sketches = views
            .iter()
            .flat_map(|view| view.values.iter().map(|(_, kept)| kept.actors));
        Ok(union_of(sketches.collect())?.count())
    }

    fn views(&self) -> Result<Vec<TableView<'_>>, String> {
        self.cells.iter().map(EncodedTable::view).collect()
    }
}

/// The unique users of each of `listed`, the unions spread over the machine's cores: a
/// month's top 10 is some 300 merges of 16 KiB of registers, half of a report's time on
/// one core.
fn unique_users(views: &[TableView<'_>], listed: &[&str]) -> Result<Vec<u64>, String> {
    let count = |values: &[&str]| -> Result<Vec<u64>, String> {
        let unions = values
            .iter()
            .map(|value| union_of(sketches_of(views, value)));
        unions.map(|union| Ok(union?.count())).collect()
    };
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let per_thread = listed.len().div_ceil(cores).max(1);
    let mut chunks = listed.chunks(per_thread);
    let Some(first) = chunks.next() else {
        return Ok(Vec::new());
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = chunks
            .map(|values| scope.spawn(move || count(values)))
            .collect();
        let mut users = count(first)?;
        for other in others {
            users.extend(other.join().expect("a union does not panic")?);
        }
        Ok(users)
    })
}

/// The stored sketches of `value` in every cell that kept it.
fn sketches_of<'a>(views: &[TableView<'a>], value: &str) -> Vec<&'a [u8]> {
    views
        .iter()
        .filter_map(|view| view.get(value).map(|kept| kept.actors))
        .collect()
}

/// Distinct values over the range: the kept ones and, once cells folded values, those
/// the folded values' sketches estimate.
fn distinct_values<'a>(
    views: &[TableView<'a>],
    kept: impl Iterator<Item = &'a str>,
) -> Result<u64, String> {
    let folded: Vec<&[u8]> = views
        .iter()
        .map(|view| view.other.values)
        .filter(|values| !values.is_empty())
        .collect();
    let mut kept: Vec<_> = kept.map(ActorSketch::coupon).collect();
    if folded.is_empty() {
        return Ok(kept.len() as u64);
    }
    let mut union = union_of(folded)?;
    // Added in one order whatever the map's (coupons sort far faster than the values).
    kept.sort_unstable();
    let mut values = ActorSketch::for_unions();
    kept.into_iter().for_each(|coupon| values.add(coupon));
    union.add_sketch(&values);
    Ok(union.count())
}

/// The union of encoded sketches, taken in one order whatever the cells' (a union's
/// estimate can differ in its last digit with the order of its sketches).
fn union_of(mut sketches: Vec<&[u8]>) -> Result<ActorUnion, String> {
    sketches.sort_unstable();
    let mut union = ActorUnion::default();
    union.add_encoded(&sketches)?;
    Ok(union)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use uuid::Uuid;

    use super::*;
    use crate::rollups::value_table::{RecountedValue, ValueTable};
    use crate::rollups::{
        ActorSketch, BreakdownDelta, CellKey, Dimension, DimensionValues, Hour, ValueCounts,
    };

    #[allow(dead_code, reason = "each includer uses a part")]
    mod seeded {
        include!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/seeded.rs"
        ));
    }

    use crate::model::{DeviceType, Enrichment};
    use seeded::{Seeded, zipf_law};

    /// The scaled-down workload's caps: a quarter of its pages while live, 250 sealed.
    const CAP: usize = 250;
    const LIVE_CAP: usize = 1_000;
    const PARTNER: Uuid = Uuid::from_u128(1);

    struct Day {
        hours: HashMap<CellKey, Vec<ValueTable>>,
        days: HashMap<CellKey, ValueTable>,
        /// Per country ("" for all): page → events, and the actors of each page.
        recount: HashMap<String, HashMap<String, u64>>,
        actors: HashMap<String, HashSet<u64>>,
    }

    /// A day of a scaled-down seeded workload (3,000 pages on a Zipf law, 20 countries on
    /// another, 20,000 users, 4,000 events an hour), written batch by batch as the embedded
    /// store writes it, at `live_cap` values a cell, each hour and the day sealed to `CAP`
    /// when over, with its exact recount beside it. Built once per cap for all tests.
    fn seeded_day(live_cap: usize) -> &'static Day {
        static SEALED: std::sync::OnceLock<Day> = std::sync::OnceLock::new();
        static FIRST_COME: std::sync::OnceLock<Day> = std::sync::OnceLock::new();
        let cell = if live_cap == CAP {
            &FIRST_COME
        } else {
            &SEALED
        };
        cell.get_or_init(|| write_seeded_day(live_cap))
    }

    fn write_seeded_day(live_cap: usize) -> Day {
        let pages = zipf_law(3_000);
        let countries = zipf_law(20);
        let mut seeded = Seeded(25);
        let mut day = Day {
            hours: HashMap::new(),
            days: HashMap::new(),
            recount: HashMap::new(),
            actors: HashMap::new(),
        };
        let mut hour_tables: HashMap<CellKey, ValueTable> = HashMap::new();
        for hour in (0..24).map(|n| Hour(490_000 * 24 + n)) {
            for _batch in 0..40 {
                let mut delta = BreakdownDelta::default();
                for _event in 0..100 {
                    let page = format!("/p/{}", seeded.zipf(&pages));
                    let country = format!("C{}", seeded.zipf(&countries));
                    let user = seeded.below(20_000);
                    let mut values = DimensionValues::default();
                    values.set(Dimension::EventType, "page_view");
                    values.set(Dimension::Page, page.clone());
                    values.set(Dimension::Country, country.clone());
                    let actor = ActorSketch::coupon(&format!("user-{user}"));
                    delta.add(PARTNER, hour, Some(actor), &values);
                    for scope in [String::new(), country] {
                        let pages = day.recount.entry(scope).or_default();
                        *pages.entry(page.clone()).or_default() += 1;
                    }
                    day.actors.entry(page).or_default().insert(user);
                }
                for (key, counts) in delta.cells() {
                    let table = hour_tables.entry(key).or_default();
                    table.absorb(&counts, live_cap).unwrap();
                }
                for (key, counts) in &delta.by_day() {
                    let table = day.days.entry(key.clone()).or_default();
                    table.absorb(counts, live_cap).unwrap();
                }
            }
        }
        day.days
            .values_mut()
            .for_each(|table| table.seal(CAP).unwrap());
        for (key, mut table) in hour_tables {
            table.seal(CAP).unwrap();
            let all_hours = CellKey {
                hour: key.hour.day(),
                ..key
            };
            day.hours.entry(all_hours).or_default().push(table);
        }
        day
    }

    fn page_cell(filter: Option<(Dimension, &str)>) -> CellKey {
        CellKey {
            partner_id: PARTNER,
            hour: Hour(490_000 * 24),
            bots: false,
            filter: filter.map(|(dimension, value)| (dimension, value.to_string())),
            dimension: Dimension::Page,
        }
    }

    fn range(cells: impl IntoIterator<Item = ValueTable>) -> BreakdownRange {
        let mut range = BreakdownRange::default();
        cells
            .into_iter()
            .for_each(|cell| range.add(EncodedTable::from(&cell)));
        range
    }

    fn recount_top(recount: &HashMap<String, u64>, limit: usize) -> Vec<(String, u64)> {
        let mut ordered: Vec<(String, u64)> = recount
            .iter()
            .map(|(page, events)| (page.clone(), *events))
            .collect();
        ordered.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ordered.truncate(limit);
        ordered
    }

    fn events_of(top: &TopValues) -> Vec<(String, u64)> {
        top.items
            .iter()
            .map(|item| (item.value.clone(), item.events))
            .collect()
    }

    #[test]
    fn top_values_of_a_zipf_workload_written_batch_by_batch_are_exact_against_a_recount() {
        let day = seeded_day(LIVE_CAP);
        let all = &day.recount[""];
        let cell = page_cell(None);
        let from_hours = range(day.hours[&cell].clone()).top(10).unwrap();
        let from_day = range([day.days[&cell].clone()]).top(10).unwrap();
        for top in [&from_hours, &from_day] {
            assert_eq!(events_of(top), recount_top(all, 10));
            assert!(top.items.iter().all(|item| item.error == 0), "{top:?}");
            assert_eq!(top.total_events, 96_000);
            assert_eq!(
                top.other_events,
                96_000 - recount_top(all, 10).iter().map(|(_, n)| n).sum::<u64>()
            );
        }
        let distinct = all.len() as f64;
        let other_values = from_hours.other_values as f64 + 10.0;
        assert!(
            (other_values - distinct).abs() / distinct < 0.03,
            "{other_values} for {distinct}"
        );

        // The cap bit (values were folded, with bounds), and every bound holds.
        let deep = range(day.hours[&cell].clone()).top(2_000).unwrap();
        assert!(deep.items.iter().any(|item| item.error > 0));
        assert!(bounds_hold(&deep, all));
    }

    fn bounds_hold(top: &TopValues, recount: &HashMap<String, u64>) -> bool {
        top.items.iter().all(|item| {
            let recounted = recount[&item.value];
            item.events <= recounted && recounted <= item.events + item.error
        })
    }

    #[test]
    fn values_kept_first_come_at_the_cap_carry_bounds_that_a_recount_respects() {
        let day = seeded_day(CAP);
        let all = &day.recount[""];
        let top = range(day.hours[&page_cell(None)].clone())
            .top(2_000)
            .unwrap();
        assert!(bounds_hold(&top, all));
        let exact = top.items.iter().filter(|item| item.error == 0);
        assert!(exact.clone().count() >= 5);
        assert!(exact.clone().all(|item| item.events == all[&item.value]));
        assert!(
            top.items[..10].iter().any(|item| item.error > 0),
            "at this tight a cap some hour folded a top value, and said so"
        );
    }

    #[test]
    fn top_values_under_a_country_filter_are_exact_against_a_recount() {
        let day = seeded_day(LIVE_CAP);
        for country in ["C0", "C3"] {
            let cell = page_cell(Some((Dimension::Country, country)));
            let top = range(day.hours[&cell].clone()).top(10).unwrap();
            assert_eq!(
                events_of(&top),
                recount_top(&day.recount[country], 10),
                "{country}"
            );
            assert!(top.items.iter().all(|item| item.error == 0));
        }
    }

    #[test]
    fn hours_folded_by_recount_give_the_same_exact_top_values() {
        let pages = zipf_law(3_000);
        let mut seeded = Seeded(7);
        let mut recount: HashMap<String, u64> = HashMap::new();
        let mut cells = Vec::new();
        for _hour in 0..12 {
            let mut hour: HashMap<String, RecountedValue> = HashMap::new();
            for _event in 0..4_000 {
                let page = format!("/p/{}", seeded.zipf(&pages));
                let value = hour.entry(page.clone()).or_default();
                value.events += 1;
                value
                    .actors
                    .add_actor(&format!("user-{}", seeded.below(20_000)));
                *recount.entry(page).or_default() += 1;
            }
            cells.push(ValueTable::from_recount(hour, CAP));
        }
        let top = range(cells).top(10).unwrap();
        assert_eq!(events_of(&top), recount_top(&recount, 10));
        assert!(top.items.iter().all(|item| item.error == 0));
    }

    #[test]
    fn unique_users_of_a_large_value_are_within_two_percent() {
        let day = seeded_day(LIVE_CAP);
        let top = range(day.hours[&page_cell(None)].clone()).top(3).unwrap();
        for item in &top.items {
            let exact = day.actors[&item.value].len() as f64;
            let error = (item.unique_users as f64 - exact).abs() / exact;
            assert!(
                exact > 2_000.0 && error < 0.02,
                "{} for {exact}",
                item.unique_users
            );
        }
        let mut cells = Vec::new();
        for hour in 0..24u64 {
            let mut table = ValueTable::default();
            let actors = (0..5_000).map(|n| ActorSketch::coupon(&format!("a{}", hour * 2_000 + n)));
            let counts: ValueCounts = HashMap::from([(
                "/".to_string(),
                crate::rollups::ValueDelta {
                    events: 5_000,
                    actors: actors.collect(),
                },
            )]);
            table.absorb(&counts, CAP).unwrap();
            cells.push(table);
        }
        // 24 hours of 5,000 actors each, overlapping by 3,000: 51,000 distinct.
        let users = range(cells).top(1).unwrap().items[0].unique_users as f64;
        assert!(
            (users - 51_000.0).abs() / 51_000.0 < 0.02,
            "{users} for 51,000"
        );
    }

    #[test]
    fn merging_cells_in_any_order_gives_the_same_answer() {
        let day = seeded_day(LIVE_CAP);
        let mut cells = day.hours[&page_cell(None)].clone();
        cells.push(day.days[&page_cell(None)].clone());
        let forward = range(cells.clone()).top(300).unwrap();
        cells.reverse();
        cells.swap(3, 17);
        let shuffled = range(cells).top(300).unwrap();
        assert_eq!(forward, shuffled);
    }
}

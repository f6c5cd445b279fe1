//! Stored events recounted into breakdown cells: what both stores' folds write for an hour
//! or a UTC day, and what `rollups verify` compares the stored cells with
//! (docs/BREAKDOWNS.md, "What a store does with it"). A store keys a cell by its
//! `CellName` (dimension names, not the slots of the partner's declared list, which may
//! change), encoded by `CellName::to_bytes`.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::breakdown_cells::{BreakdownDelta, CellKey, ValueCounts};
use super::dimension::{Dimension, DimensionValues};
use super::encoded_table::EncodedTable;
use super::postings_fold::PostingsRecount;
use super::value_table::{TableDisagreement, VALUE_CAP, ValueTable};
use super::visits_fold::{VisitCell, VisitsRecount};
use super::{ActorSketch, Hour};
use crate::model::{Enrichment, Event};
use crate::people::postings::{self, Posting};
use crate::people::sessions::VisitTally;

/// A stored cell's identity within a partner and an hour (or day): its partition, its
/// filter as (dimension name, value), and the dimension it breaks down, by API name
/// (`page`, `properties.plan`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellName {
    pub bots: bool,
    pub filter: Option<(String, String)>,
    pub dimension: String,
}

impl CellName {
    /// The name of `key`'s cell; `None` for a property slot `declared` does not have.
    pub fn of(key: &CellKey, declared: &[String]) -> Option<CellName> {
        let filter = match &key.filter {
            Some((dimension, value)) => Some((dimension.name(declared)?, value.clone())),
            None => None,
        };
        Some(CellName {
            bots: key.bots,
            filter,
            dimension: key.dimension.name(declared)?,
        })
    }

    /// A store key part that orders and compares as the name does not need to: equal
    /// names give equal bytes, and no encoding is the prefix of another's.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a cell name always encodes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<CellName, String> {
        postcard::from_bytes(bytes)
            .map_err(|error| format!("a breakdown cell name does not decode: {error}"))
    }
}

/// What an event contributes to breakdowns: its event type and subsystem, its stored
/// enrichment (absent for events stored before enrichment: then only `bot` = false), and
/// the scalar values of the `declared` properties it carries (strings as they are,
/// numbers and booleans as JSON writes them).
pub fn dimension_values(event: &Event, declared: &[String]) -> DimensionValues {
    let mut values = DimensionValues::default();
    values.set(Dimension::EventType, event.event_type.as_str());
    values.set(Dimension::Subsystem, event.subsystem_id.to_string());
    // Borrowed, not cloned: a fold does this for every event of an hour.
    let no_enrichment = Enrichment::default();
    let enrichment = event.enrichment.as_ref().unwrap_or(&no_enrichment);
    let texts = [
        (Dimension::Page, &enrichment.page),
        (Dimension::ReferrerHost, &enrichment.referrer_host),
        (Dimension::UtmSource, &enrichment.utm_source),
        (Dimension::UtmMedium, &enrichment.utm_medium),
        (Dimension::UtmCampaign, &enrichment.utm_campaign),
        (Dimension::Browser, &enrichment.browser),
        (Dimension::Os, &enrichment.os),
        (Dimension::Country, &enrichment.country),
    ];
    for (dimension, value) in texts {
        if let Some(value) = value.as_deref().filter(|value| !value.is_empty()) {
            values.set(dimension, value);
        }
    }
    if let Some(device) = enrichment.device_type {
        values.set(Dimension::DeviceType, device.as_str());
    }
    values.set(
        Dimension::Bot,
        if enrichment.bot { "true" } else { "false" },
    );
    values.set(
        Dimension::Valid,
        if event.is_valid { "true" } else { "false" },
    );
    if !declared.is_empty() {
        let properties = event.properties.to_value();
        for (slot, name) in declared.iter().enumerate() {
            let Ok(slot) = u8::try_from(slot) else { break };
            if let Some(value) = scalar_text(properties.get(name)) {
                values.set(Dimension::Property(slot), value);
            }
        }
    }
    values
}

/// A property value as a breakdown value: scalars only (`null`, objects and arrays have
/// none).
fn scalar_text(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A recount of one partner's stored events, hour by hour: feed it every event of the
/// hours (or days) to fold, each given its person (`Joins::resolve`), then take the cells.
#[derive(Debug, Default)]
pub struct BreakdownRecount {
    delta: BreakdownDelta,
    postings: PostingsRecount,
    visits: VisitsRecount,
}

/// What one stored cell holds: a breakdown's value table, people's postings, or a day's
/// visit tally.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Table(ValueTable),
    Postings(Vec<Posting>),
    Visits(VisitTally),
}

/// Cells by (hour or day, name).
pub type Cells = BTreeMap<(Hour, CellName), Cell>;

impl Cell {
    /// The parts a store writes, each encoding at most `max_part_bytes` (a value table's
    /// part holds at least one value, a postings part at least one posting).
    pub fn encode(&self, max_part_bytes: usize) -> Vec<Vec<u8>> {
        match self {
            Cell::Table(table) => table
                .split(max_part_bytes)
                .iter()
                .map(ValueTable::to_bytes)
                .collect(),
            Cell::Postings(list) => postings::encode(list.clone(), max_part_bytes),
            Cell::Visits(tally) => tally.to_parts(max_part_bytes),
        }
    }

    /// The cell `name` stored as `encoded`.
    pub fn decode(name: &CellName, encoded: &EncodedTable) -> Result<Cell, String> {
        if name.is_visits() {
            return VisitTally::from_parts(encoded.parts().iter().map(Vec::as_slice))
                .map(Cell::Visits);
        }
        if !name.is_postings() {
            return encoded.decode().map(Cell::Table);
        }
        let mut list = Vec::new();
        for part in encoded.parts() {
            list.extend(postings::decode(part)?);
        }
        Ok(Cell::Postings(list))
    }
}

/// What a recount says a cell should hold: each value's events, the postings, or the
/// visit tally.
#[derive(Debug, Clone, PartialEq)]
pub enum CellRecount {
    Counts(CellCounts),
    Postings(Vec<Posting>),
    Visits(VisitTally),
}

impl BreakdownRecount {
    pub fn add(&mut self, event: &Event, declared: &[String]) {
        let actor = event.actor().map(ActorSketch::coupon);
        let values = dimension_values(event, declared);
        self.delta
            .add(event.partner_id, Hour::of(event.timestamp), actor, &values);
        self.postings.add(event);
        self.visits.add(event);
    }

    /// The hour cells to store: tables at `VALUE_CAP`, and postings.
    pub fn hour_cells(&self, declared: &[String]) -> Cells {
        let mut cells = tables(self.delta.cells(), declared);
        cells.extend(postings_cells(&self.postings, false));
        cells
    }

    /// The same events' cells per UTC day (by its first hour), with the day's visits: fold
    /// them from a recount of the whole day (a day kept from sealed hours would lose its
    /// exact top values, and its visits).
    pub fn day_cells(&self, declared: &[String]) -> Cells {
        let mut cells = tables(self.delta.by_day(), declared);
        cells.extend(postings_cells(&self.postings, true));
        for (key, cell) in self.visits.day_cells() {
            let cell = match cell {
                VisitCell::Tally(tally) => Cell::Visits(tally),
                VisitCell::Pages(pages) => Cell::Table(capped(&pages)),
            };
            cells.insert(key, cell);
        }
        cells
    }

    /// What each hour cell should hold, for `check_tables`.
    pub fn hour_counts(&self, declared: &[String]) -> BTreeMap<(Hour, CellName), CellRecount> {
        let mut recounted = counts(self.delta.cells(), declared);
        recounted.extend(postings_recounts(&self.postings, false));
        recounted
    }

    /// The same per UTC day.
    pub fn day_counts(&self, declared: &[String]) -> BTreeMap<(Hour, CellName), CellRecount> {
        let mut recounted = counts(self.delta.by_day(), declared);
        recounted.extend(postings_recounts(&self.postings, true));
        for (key, cell) in self.visits.day_cells() {
            let recount = match cell {
                VisitCell::Tally(tally) => CellRecount::Visits(tally),
                VisitCell::Pages(pages) => CellRecount::Counts(events_by_value(pages)),
            };
            recounted.insert(key, recount);
        }
        recounted
    }
}

fn postings_cells(
    postings: &PostingsRecount,
    days: bool,
) -> impl Iterator<Item = ((Hour, CellName), Cell)> {
    postings
        .cells(days)
        .into_iter()
        .map(|(key, list)| (key, Cell::Postings(list)))
}

fn postings_recounts(
    postings: &PostingsRecount,
    days: bool,
) -> impl Iterator<Item = ((Hour, CellName), CellRecount)> {
    postings
        .cells(days)
        .into_iter()
        .map(|(key, list)| (key, CellRecount::Postings(list)))
}

/// A cell's recounted events by value.
pub type CellCounts = HashMap<String, u64>;

fn tables(cells: impl IntoIterator<Item = (CellKey, ValueCounts)>, declared: &[String]) -> Cells {
    cells
        .into_iter()
        .filter_map(|(key, counts)| {
            let name = CellName::of(&key, declared)?;
            Some(((key.hour, name), Cell::Table(capped(&counts))))
        })
        .collect()
}

/// A cell's table of `counts`, one batch holding every event, biggest values first: the
/// top `VALUE_CAP` are kept exact (error 0), the rest folded with the largest as the bound.
fn capped(counts: &ValueCounts) -> ValueTable {
    let mut table = ValueTable::default();
    table
        .absorb(counts, VALUE_CAP)
        .expect("a new table has no stored sketch to decode");
    table
}

fn events_by_value(counts: ValueCounts) -> CellCounts {
    counts
        .into_iter()
        .map(|(value, delta)| (value, delta.events))
        .collect()
}

fn counts(
    cells: impl IntoIterator<Item = (CellKey, ValueCounts)>,
    declared: &[String],
) -> BTreeMap<(Hour, CellName), CellRecount> {
    cells
        .into_iter()
        .filter_map(|(key, counts)| {
            let name = CellName::of(&key, declared)?;
            Some((
                (key.hour, name),
                CellRecount::Counts(events_by_value(counts)),
            ))
        })
        .collect()
}

/// A stored breakdown cell that a recount of its events contradicts (`rollups verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakdownDifference {
    pub partner_id: Uuid,
    /// The hour, or a day's first hour (`hours` 24).
    pub hour: Hour,
    pub hours: u32,
    pub cell: CellName,
    pub disagreements: Vec<TableDisagreement>,
}

/// Every cell of `stored` or `recounted` (by hour or day and name) on which they
/// disagree: a stored table is checked with `ValueTable::check` at `VALUE_CAP`, stored
/// postings must equal the recounted ones, and a cell missing on one side is empty there.
pub fn check_tables(
    partner_id: Uuid,
    hours: u32,
    stored: &Cells,
    recounted: &BTreeMap<(Hour, CellName), CellRecount>,
) -> Vec<BreakdownDifference> {
    let keys: std::collections::BTreeSet<&(Hour, CellName)> =
        stored.keys().chain(recounted.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let disagreements = check_cell(&key.1, stored.get(key), recounted.get(key));
            (!disagreements.is_empty()).then(|| BreakdownDifference {
                partner_id,
                hour: key.0,
                hours,
                cell: key.1.clone(),
                disagreements,
            })
        })
        .collect()
}

fn check_cell(
    name: &CellName,
    stored: Option<&Cell>,
    recounted: Option<&CellRecount>,
) -> Vec<TableDisagreement> {
    if name.is_visits() {
        let stored = match stored {
            Some(Cell::Visits(tally)) => tally.clone(),
            _ => VisitTally::default(),
        };
        let recounted = match recounted {
            Some(CellRecount::Visits(tally)) => tally.clone(),
            _ => VisitTally::default(),
        };
        return if stored == recounted {
            Vec::new()
        } else {
            vec![TableDisagreement::Visits {
                stored: stored.visits,
                recounted: recounted.visits,
            }]
        };
    }
    let none = Vec::new();
    if name.is_postings() {
        let stored = match stored {
            Some(Cell::Postings(list)) => list,
            _ => &none,
        };
        let recounted = match recounted {
            Some(CellRecount::Postings(list)) => list,
            _ => &none,
        };
        return if stored == recounted {
            Vec::new()
        } else {
            vec![TableDisagreement::Postings {
                stored: stored.len() as u64,
                recounted: recounted.len() as u64,
            }]
        };
    }
    let empty_table = ValueTable::default();
    let empty_counts = CellCounts::new();
    let table = match stored {
        Some(Cell::Table(table)) => table,
        _ => &empty_table,
    };
    let counts = match recounted {
        Some(CellRecount::Counts(counts)) => counts,
        _ => &empty_counts,
    };
    table.check(counts, VALUE_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeviceType, Enrichment, JsonObject};
    use chrono::{TimeZone, Utc};

    fn event(page: &str, country: &str, bot: bool, user: &str, minute: u32) -> Event {
        let mut event = crate::model::test_support::sample_event(&format!("{user}-{minute}"));
        event.timestamp = Utc.with_ymd_and_hms(2026, 11, 20, 10, minute, 0).unwrap();
        event.user_id = Some(user.to_string());
        event.properties =
            JsonObject::parse(r#"{"plan":"pro","seats":3,"tags":[1]}"#.into()).expect("valid JSON");
        event.enrichment = Some(Enrichment {
            page: Some(page.to_string()),
            country: Some(country.to_string()),
            device_type: Some(if bot {
                DeviceType::Bot
            } else {
                DeviceType::Desktop
            }),
            bot,
            ..Enrichment::default()
        });
        event
    }

    #[test]
    fn values_come_from_the_enrichment_and_the_declared_scalar_properties() {
        let declared = vec!["seats".to_string(), "tags".to_string(), "plan".to_string()];
        let values = dimension_values(&event("/a", "DE", false, "u1", 0), &declared);
        assert_eq!(values.get(Dimension::Page), Some("/a"));
        assert_eq!(values.get(Dimension::Country), Some("DE"));
        assert_eq!(values.get(Dimension::DeviceType), Some("desktop"));
        assert_eq!(values.get(Dimension::Bot), Some("false"));
        assert_eq!(values.get(Dimension::Property(0)), Some("3"));
        assert_eq!(
            values.get(Dimension::Property(1)),
            None,
            "arrays are not values"
        );
        assert_eq!(values.get(Dimension::Property(2)), Some("pro"));
        assert_eq!(values.get(Dimension::ReferrerHost), None);

        let mut old = event("/a", "DE", false, "u1", 0);
        old.enrichment = None;
        let values = dimension_values(&old, &[]);
        assert_eq!(values.get(Dimension::Page), None);
        assert_eq!(values.get(Dimension::Bot), Some("false"));
        assert!(values.get(Dimension::EventType).is_some());
    }

    #[test]
    fn a_recount_checks_clean_against_its_own_tables_and_catches_a_changed_count() {
        let declared = vec!["plan".to_string()];
        let mut recount = BreakdownRecount::default();
        for n in 0..60u32 {
            let page = format!("/p{}", n % 7);
            recount.add(
                &event(&page, "DE", n % 10 == 0, &format!("u{n}"), n),
                &declared,
            );
        }
        let partner = recount.delta.cells().next().unwrap().0.partner_id;
        let tables = recount.hour_cells(&declared);
        let counts = recount.hour_counts(&declared);
        assert!(check_tables(partner, 1, &tables, &counts).is_empty());
        let table = |name: &CellName| match &tables[&(hour_of_test(), name.clone())] {
            Cell::Table(table) => table.clone(),
            _ => panic!("a table"),
        };

        let page_cell = CellName {
            bots: false,
            filter: None,
            dimension: "page".into(),
        };
        let hour = hour_of_test();
        let humans: u64 = table(&page_cell).total_events();
        assert_eq!(humans, 54, "the six bot events are in the bot partition");
        let property = CellName {
            bots: false,
            filter: None,
            dimension: "properties.plan".into(),
        };
        assert_eq!(table(&property).values["pro"].events, 54);
        let filtered = CellName {
            bots: false,
            filter: Some(("country".into(), "DE".into())),
            dimension: "page".into(),
        };
        assert!(tables.contains_key(&(hour, filtered)));

        let mut changed = tables.clone();
        let mut page = table(&page_cell);
        page.values.get_mut("/p1").unwrap().events += 1;
        changed.insert((hour, page_cell.clone()), Cell::Table(page));
        let differences = check_tables(partner, 1, &changed, &counts);
        assert_eq!(differences.len(), 1);
        assert_eq!(differences[0].cell, page_cell);

        // Postings: one event's person changed (a join the stored fold did not know).
        let postings = crate::rollups::postings_cell("page_view", None);
        let mut changed = tables.clone();
        let Some(Cell::Postings(list)) = changed.get_mut(&(hour, postings.clone())) else {
            panic!("the events' postings")
        };
        assert_eq!(list.len(), 60);
        list[0].person ^= 1;
        let differences = check_tables(partner, 1, &changed, &counts);
        assert_eq!(differences.len(), 1);
        assert_eq!(differences[0].cell, postings);

        let days = recount.day_cells(&declared);
        assert!(days.keys().all(|(day, _)| *day == hour.day()));
        let day_counts = recount.day_counts(&declared);
        assert!(check_tables(partner, 24, &days, &day_counts).is_empty());

        // A day's visits are checked too: a stored tally that lost a bounce differs.
        let visits = crate::rollups::visits_cell(None, false);
        let mut changed = days.clone();
        let Some(Cell::Visits(tally)) = changed.get_mut(&(hour.day(), visits.clone())) else {
            panic!("the day's visits")
        };
        assert!(tally.bounces > 0);
        tally.bounces -= 1;
        let differences = check_tables(partner, 24, &changed, &day_counts);
        assert_eq!(differences.len(), 1);
        assert_eq!(differences[0].cell, visits);
        let entries = crate::rollups::page_cell(crate::rollups::ENTRY_PAGE, None, false);
        assert!(
            days.contains_key(&(hour.day(), entries)),
            "entry pages beside them"
        );
    }

    fn hour_of_test() -> Hour {
        Hour::of(Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap())
    }

    #[test]
    fn cell_names_round_trip_and_differ_by_partition() {
        let name = CellName {
            bots: true,
            filter: Some(("country".into(), "DE".into())),
            dimension: "page".into(),
        };
        assert_eq!(CellName::from_bytes(&name.to_bytes()).unwrap(), name);
        let humans = CellName {
            bots: false,
            ..name.clone()
        };
        assert_ne!(name.to_bytes(), humans.to_bytes());
    }
}

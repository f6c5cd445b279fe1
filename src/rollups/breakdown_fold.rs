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
use super::value_table::{TableDisagreement, VALUE_CAP, ValueTable};
use super::{ActorSketch, Hour};
use crate::model::{Enrichment, Event};

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
/// hours (or days) to fold, then take the cells.
#[derive(Debug, Default)]
pub struct BreakdownRecount {
    delta: BreakdownDelta,
}

impl BreakdownRecount {
    pub fn add(&mut self, event: &Event, declared: &[String]) {
        let actor = event.actor().map(ActorSketch::coupon);
        let values = dimension_values(event, declared);
        self.delta
            .add(event.partner_id, Hour::of(event.timestamp), actor, &values);
    }

    /// The hour cells to store, at `VALUE_CAP`, keyed by (hour, name).
    pub fn hour_tables(&self, declared: &[String]) -> BTreeMap<(Hour, CellName), ValueTable> {
        tables(self.delta.cells(), declared)
    }

    /// The same events' cells per UTC day (by its first hour): fold them from a recount of
    /// the whole day (a day kept from sealed hours would lose its exact top values).
    pub fn day_tables(&self, declared: &[String]) -> BTreeMap<(Hour, CellName), ValueTable> {
        tables(self.delta.by_day(), declared)
    }

    /// The recounted events per value of each hour cell, for `check_tables`.
    pub fn hour_counts(&self, declared: &[String]) -> BTreeMap<(Hour, CellName), CellCounts> {
        counts(self.delta.cells(), declared)
    }

    /// The same per UTC day.
    pub fn day_counts(&self, declared: &[String]) -> BTreeMap<(Hour, CellName), CellCounts> {
        counts(self.delta.by_day(), declared)
    }
}

/// A cell's recounted events by value.
pub type CellCounts = HashMap<String, u64>;

fn tables(
    cells: impl IntoIterator<Item = (CellKey, ValueCounts)>,
    declared: &[String],
) -> BTreeMap<(Hour, CellName), ValueTable> {
    cells
        .into_iter()
        .filter_map(|(key, counts)| {
            let name = CellName::of(&key, declared)?;
            let mut table = ValueTable::default();
            // One batch holding every event, biggest values first: the top `VALUE_CAP`
            // are kept exact (error 0), the rest folded with the largest as the bound.
            table
                .absorb(&counts, VALUE_CAP)
                .expect("a new table has no stored sketch to decode");
            Some(((key.hour, name), table))
        })
        .collect()
}

fn counts(
    cells: impl IntoIterator<Item = (CellKey, ValueCounts)>,
    declared: &[String],
) -> BTreeMap<(Hour, CellName), CellCounts> {
    cells
        .into_iter()
        .filter_map(|(key, counts)| {
            let name = CellName::of(&key, declared)?;
            let counts = counts
                .into_iter()
                .map(|(value, delta)| (value, delta.events))
                .collect();
            Some(((key.hour, name), counts))
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
/// disagree: a stored cell is checked with `ValueTable::check` at `VALUE_CAP`, a cell
/// missing on one side is empty there.
pub fn check_tables(
    partner_id: Uuid,
    hours: u32,
    stored: &BTreeMap<(Hour, CellName), ValueTable>,
    recounted: &BTreeMap<(Hour, CellName), CellCounts>,
) -> Vec<BreakdownDifference> {
    let empty_table = ValueTable::default();
    let empty_counts = CellCounts::new();
    let keys: std::collections::BTreeSet<&(Hour, CellName)> =
        stored.keys().chain(recounted.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let table = stored.get(key).unwrap_or(&empty_table);
            let counts = recounted.get(key).unwrap_or(&empty_counts);
            let disagreements = table.check(counts, VALUE_CAP);
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
        let tables = recount.hour_tables(&declared);
        let counts = recount.hour_counts(&declared);
        assert!(check_tables(partner, 1, &tables, &counts).is_empty());

        let page_cell = CellName {
            bots: false,
            filter: None,
            dimension: "page".into(),
        };
        let hour = Hour::of(Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap());
        let humans: u64 = tables[&(hour, page_cell.clone())].total_events();
        assert_eq!(humans, 54, "the six bot events are in the bot partition");
        let property = CellName {
            bots: false,
            filter: None,
            dimension: "properties.plan".into(),
        };
        assert_eq!(tables[&(hour, property)].values["pro"].events, 54);
        let filtered = CellName {
            bots: false,
            filter: Some(("country".into(), "DE".into())),
            dimension: "page".into(),
        };
        assert!(tables.contains_key(&(hour, filtered)));

        let mut changed = tables.clone();
        let table = changed.get_mut(&(hour, page_cell.clone())).unwrap();
        table.values.get_mut("/p1").unwrap().events += 1;
        let differences = check_tables(partner, 1, &changed, &counts);
        assert_eq!(differences.len(), 1);
        assert_eq!(differences[0].cell, page_cell);

        let days = recount.day_tables(&declared);
        assert!(days.keys().all(|(day, _)| *day == hour.day()));
        assert!(check_tables(partner, 24, &days, &recount.day_counts(&declared)).is_empty());
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

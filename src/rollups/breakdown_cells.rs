//! Which breakdown cells an event is counted in, and the per-batch change to them
//! (`BreakdownDelta`), the breakdown twin of `RollupDelta`.
//!
//! A cell is (partner, hour, bots or humans, filter, dimension): the values of one dimension
//! among one hour's events that pass one `where=` equality filter (or none). Every event
//! goes to the cells of its own bot partition, so excluding bots costs nothing. Which
//! (filter × dimension) pairs get cells is `CELL_SPECS`: each pair costs one count and one
//! coupon per event that has both values, so the set is small on purpose (docs/BREAKDOWNS.md).

use std::collections::HashMap;

use datasketches::hll::Coupon;
use uuid::Uuid;

use super::dimension::{Dimension, DimensionValues};
use super::{ActorSketch, Hour};

use Dimension::{
    Browser, Country, DeviceType, EventType, Os, Page, ReferrerHost, Subsystem, UtmCampaign,
    UtmMedium, UtmSource,
};

/// One family of cells: the filter dimension (`None`: unfiltered), the dimensions broken
/// down under it, and whether declared properties are too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellSpec {
    pub filter: Option<Dimension>,
    pub dimensions: &'static [Dimension],
    pub properties: bool,
}

const ALL_BUT_EVENT_TYPE: &[Dimension] = &[
    Subsystem,
    Page,
    ReferrerHost,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    Browser,
    Os,
    DeviceType,
    Country,
];

/// The cell families every event is counted in. `eventType` (the breakdown's own
/// `eventType=` too) and `subsystem` (`subsystemId=`) filter every built-in dimension;
/// `country` and `deviceType`, the filters a dashboard click sets most, filter the others.
/// Properties are broken down unfiltered and by event type only: they are event-type
/// specific. Two filters at once (say `eventType` and `country`) have no cell: a bounded raw
/// read answers them.
pub const CELL_SPECS: [CellSpec; 5] = [
    CellSpec {
        filter: None,
        dimensions: &[
            EventType,
            Subsystem,
            Page,
            ReferrerHost,
            UtmSource,
            UtmMedium,
            UtmCampaign,
            Browser,
            Os,
            DeviceType,
            Country,
        ],
        properties: true,
    },
    CellSpec {
        filter: Some(EventType),
        dimensions: ALL_BUT_EVENT_TYPE,
        properties: true,
    },
    CellSpec {
        filter: Some(Subsystem),
        dimensions: &[
            EventType,
            Page,
            ReferrerHost,
            UtmSource,
            UtmMedium,
            UtmCampaign,
            Browser,
            Os,
            DeviceType,
            Country,
        ],
        properties: false,
    },
    CellSpec {
        filter: Some(Country),
        dimensions: &[
            EventType,
            Subsystem,
            Page,
            ReferrerHost,
            UtmSource,
            UtmMedium,
            UtmCampaign,
            Browser,
            Os,
            DeviceType,
        ],
        properties: false,
    },
    CellSpec {
        filter: Some(DeviceType),
        dimensions: &[
            EventType,
            Subsystem,
            Page,
            ReferrerHost,
            UtmSource,
            UtmMedium,
            UtmCampaign,
            Browser,
            Os,
            Country,
        ],
        properties: false,
    },
];

/// Whether a breakdown by `dimension` under at most one equality `filter` is answered from
/// rollups (else by a bounded raw read). A breakdown by `Bot` is answered under every
/// filter that has cells, from the partitions of its `EventType` cells (every event has an
/// event type), or, under an `eventType` filter, of its `Subsystem` cells.
pub fn answered_by_rollups(filter: Option<Dimension>, dimension: Dimension) -> bool {
    let Some(spec) = CELL_SPECS.iter().find(|spec| spec.filter == filter) else {
        return false;
    };
    match dimension {
        Dimension::Bot => true,
        Dimension::Property(_) => spec.properties,
        builtin => spec.dimensions.contains(&builtin),
    }
}

/// Where one cell's values are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellKey {
    pub partner_id: Uuid,
    pub hour: Hour,
    /// The bot partition (events with `bot` true) or the human one.
    pub bots: bool,
    pub filter: Option<(Dimension, String)>,
    pub dimension: Dimension,
}

/// What a batch adds to one value of one cell: its events, and its actors as coupons.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValueDelta {
    pub events: u64,
    pub actors: Vec<Coupon>,
}

/// One cell's values in a delta.
pub type ValueCounts = HashMap<String, ValueDelta>;

/// (partner, hour, bots, spec index): the part of a group's key that copies nothing.
type GroupHead = (Uuid, Hour, bool, u8);

#[derive(Debug, Default)]
struct Group {
    /// As `CELL_SPECS[spec].dimensions`.
    builtin: Vec<ValueCounts>,
    properties: Vec<(u8, ValueCounts)>,
}

/// What a batch of newly inserted events adds to the breakdown cells: exact, uncapped (a
/// batch is bounded), applied to the stored capped cells with `ValueTable::absorb`.
#[derive(Debug, Default)]
pub struct BreakdownDelta {
    groups: HashMap<GroupHead, HashMap<String, Group>>,
}

/// The filter value of the unfiltered spec.
const NO_FILTER: &str = "";

impl BreakdownDelta {
    /// Counts one event (only one the store inserted) with its actor's coupon, if it has
    /// an actor (`ActorSketch::coupon`, computed once for all rollups).
    pub fn add(
        &mut self,
        partner_id: Uuid,
        hour: Hour,
        actor: Option<Coupon>,
        values: &DimensionValues,
    ) {
        let bots = values.is_bot();
        for (spec_index, spec) in CELL_SPECS.iter().enumerate() {
            let filter_value = match spec.filter {
                None => NO_FILTER,
                Some(filter) => match values.get(filter) {
                    Some(value) => value,
                    None => continue,
                },
            };
            let head = (partner_id, hour, bots, spec_index as u8);
            let by_filter = self.groups.entry(head).or_default();
            let group = match by_filter.get_mut(filter_value) {
                Some(group) => group,
                None => by_filter.entry(filter_value.to_string()).or_insert(Group {
                    builtin: vec![ValueCounts::new(); spec.dimensions.len()],
                    properties: Vec::new(),
                }),
            };
            for (dimension, counts) in spec.dimensions.iter().zip(&mut group.builtin) {
                if let Some(value) = values.get(*dimension) {
                    count(counts, value, actor);
                }
            }
            if spec.properties {
                for (dimension, value) in values.properties() {
                    let Dimension::Property(slot) = dimension else {
                        continue;
                    };
                    let position = match group.properties.iter().position(|(s, _)| *s == slot) {
                        Some(position) => position,
                        None => {
                            group.properties.push((slot, ValueCounts::new()));
                            group.properties.len() - 1
                        }
                    };
                    count(&mut group.properties[position].1, value, actor);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Each cell this delta adds to, with its values (cells without values left out).
    pub fn cells(&self) -> impl Iterator<Item = (CellKey, &ValueCounts)> {
        self.groups.iter().flat_map(|(head, by_filter)| {
            let (partner_id, hour, bots, spec_index) = *head;
            let spec = &CELL_SPECS[usize::from(spec_index)];
            by_filter.iter().flat_map(move |(filter_value, group)| {
                let key = move |dimension| CellKey {
                    partner_id,
                    hour,
                    bots,
                    filter: spec.filter.map(|filter| (filter, filter_value.clone())),
                    dimension,
                };
                let builtin = spec.dimensions.iter().copied().zip(&group.builtin);
                let properties = group
                    .properties
                    .iter()
                    .map(|(slot, counts)| (Dimension::Property(*slot), counts));
                builtin
                    .chain(properties)
                    .filter(|(_, counts)| !counts.is_empty())
                    .map(move |(dimension, counts)| (key(dimension), counts))
            })
        })
    }

    /// The same cells under their UTC day (keyed by its first hour): what day rollups add.
    pub fn by_day(&self) -> std::collections::HashMap<CellKey, ValueCounts> {
        let mut days: HashMap<CellKey, ValueCounts> = HashMap::new();
        for (key, counts) in self.cells() {
            let day = CellKey {
                hour: key.hour.day(),
                ..key
            };
            let day_counts = days.entry(day).or_default();
            for (value, delta) in counts {
                let into = day_counts.entry(value.clone()).or_default();
                into.events += delta.events;
                into.actors.extend_from_slice(&delta.actors);
            }
        }
        days
    }
}

fn count(counts: &mut ValueCounts, value: &str, actor: Option<Coupon>) {
    let delta = match counts.get_mut(value) {
        Some(delta) => delta,
        None => counts.entry(value.to_string()).or_default(),
    };
    delta.events += 1;
    if let Some(coupon) = actor {
        delta.actors.push(coupon);
    }
}

/// The coupon of a value string, for the sketch of distinct values folded into "other".
pub(super) fn value_coupon(value: &str) -> Coupon {
    ActorSketch::coupon(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(country: &str, device: &str, page: &str, bot: bool) -> DimensionValues {
        let mut values = DimensionValues::default();
        values.set(EventType, "page_view");
        values.set(Subsystem, Uuid::from_u128(9).to_string());
        values.set(Country, country);
        values.set(DeviceType, device);
        values.set(Page, page);
        values.set(Dimension::Bot, bot.to_string());
        values.set(Dimension::Property(0), "pro");
        values
    }

    fn cell<'a>(delta: &'a BreakdownDelta, key: &CellKey) -> &'a ValueCounts {
        delta
            .cells()
            .find(|(found, _)| found == key)
            .map(|(_, counts)| counts)
            .unwrap_or_else(|| panic!("no cell {key:?}"))
    }

    #[test]
    fn an_event_is_counted_under_each_filter_it_has_a_value_for_in_its_bot_partition() {
        let partner = Uuid::from_u128(1);
        let hour = Hour(500_000);
        let actor = Some(ActorSketch::coupon("u1"));
        let mut delta = BreakdownDelta::default();
        delta.add(partner, hour, actor, &event("FR", "mobile", "/a", false));
        delta.add(partner, hour, actor, &event("FR", "desktop", "/b", false));
        delta.add(partner, hour, actor, &event("DE", "mobile", "/a", false));
        delta.add(partner, hour, None, &event("FR", "bot", "/a", true));
        let key = |bots, filter: Option<(Dimension, &str)>, dimension| CellKey {
            partner_id: partner,
            hour,
            bots,
            filter: filter.map(|(dimension, value)| (dimension, value.to_string())),
            dimension,
        };
        let pages_in_france = cell(&delta, &key(false, Some((Country, "FR")), Page));
        assert_eq!(pages_in_france["/a"].events, 1);
        assert_eq!(pages_in_france["/b"].events, 1);
        let countries_on_mobile = cell(&delta, &key(false, Some((DeviceType, "mobile")), Country));
        assert_eq!(countries_on_mobile.len(), 2);
        let pages = cell(&delta, &key(false, None, Page));
        assert_eq!(pages["/a"].events, 2);
        assert_eq!(pages["/a"].actors.len(), 2);
        let bot_pages = cell(&delta, &key(true, None, Page));
        assert_eq!(bot_pages["/a"].events, 1);
        assert!(bot_pages["/a"].actors.is_empty());
        let plans = cell(
            &delta,
            &key(
                false,
                Some((EventType, "page_view")),
                Dimension::Property(0),
            ),
        );
        assert_eq!(plans["pro"].events, 3);
        assert!(
            delta
                .cells()
                .all(|(key, _)| answered_by_rollups(key.filter.map(|(f, _)| f), key.dimension)),
            "every cell written is one a reader may use"
        );
        let days = delta.by_day();
        assert_eq!(
            days[&CellKey {
                hour: hour.day(),
                ..key(false, None, Page)
            }]["/a"]
                .events,
            2
        );
    }

    #[test]
    fn the_documented_filters_are_answered_and_pairs_of_filters_are_not() {
        for filter in [EventType, Subsystem, Country, DeviceType] {
            assert!(answered_by_rollups(Some(filter), Page), "{filter:?}");
            assert!(
                answered_by_rollups(Some(filter), Dimension::Bot),
                "{filter:?}"
            );
            assert!(!answered_by_rollups(Some(filter), filter), "{filter:?}");
        }
        assert!(answered_by_rollups(None, Dimension::Property(19)));
        assert!(answered_by_rollups(Some(EventType), Dimension::Property(0)));
        assert!(!answered_by_rollups(Some(Country), Dimension::Property(0)));
        assert!(!answered_by_rollups(Some(Page), Country));
        assert!(!answered_by_rollups(Some(Browser), Page));
    }
}

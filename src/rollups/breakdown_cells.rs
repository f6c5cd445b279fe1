//! Which breakdown cells an event is counted in, and the per-batch change to them
//! (`BreakdownDelta`), the breakdown twin of `RollupDelta`.
//!
//! A cell is (partner, hour, bots or humans, filter, dimension): the values of one dimension
//! among one hour's events that pass one `where=` equality filter (or none). Every event
//! goes to the cells of its own bot partition, so excluding bots costs nothing. Which
//! (filter × dimension) pairs get cells is `CELL_SPECS`: each pair costs one count and one
//! coupon per event that has both values, so the set is small on purpose (docs/BREAKDOWNS.md).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use datasketches::hll::Coupon;
use uuid::Uuid;

use super::dimension::{BUILTIN_DIMENSIONS, Dimension, DimensionValues};
use super::{ActorSketch, Hour};

use Dimension::{Bot, Country, DeviceType, EventType, Subsystem};

/// One family of cells: the filter dimension (`None`: unfiltered), and whether declared
/// properties are broken down under it too. The built-in dimensions broken down under a
/// filter are all but the filter's own (`dimensions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellSpec {
    pub filter: Option<Dimension>,
    pub properties: bool,
}

impl CellSpec {
    /// The built-in dimensions with cells under this filter, in `BUILTIN_DIMENSIONS` order:
    /// every one but the filter's own and `bot` (answered from the partitions).
    pub fn dimensions(&self) -> impl Iterator<Item = Dimension> + '_ {
        BUILTIN_DIMENSIONS
            .iter()
            .copied()
            .filter(move |dimension| *dimension != Bot && Some(*dimension) != self.filter)
    }
}

/// The cell families every event is counted in. `eventType` (the breakdown's own
/// `eventType=` too) and `subsystem` (`subsystemId=`) are parameters of every report;
/// `country` and `deviceType` are the filters a dashboard click sets most, with few values.
/// Properties are broken down unfiltered and by event type only: they are event-type
/// specific. Two filters at once (say `eventType` and `country`) have no cell: a bounded raw
/// read answers them.
pub const CELL_SPECS: [CellSpec; 5] = [
    CellSpec {
        filter: None,
        properties: true,
    },
    CellSpec {
        filter: Some(EventType),
        properties: true,
    },
    CellSpec {
        filter: Some(Subsystem),
        properties: false,
    },
    CellSpec {
        filter: Some(Country),
        properties: false,
    },
    CellSpec {
        filter: Some(DeviceType),
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
        builtin => spec.dimensions().any(|dimension| dimension == builtin),
    }
}

/// The dimension whose cells under `filter` hold every event passing it: every event has an
/// event type; under an event type filter, a subsystem. Its totals are the events.
pub fn total_dimension(filter: Option<Dimension>) -> Dimension {
    match filter {
        Some(EventType) => Subsystem,
        _ => EventType,
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

/// One cell's values, as `BreakdownDelta::cells` gives them.
pub type ValueCounts = HashMap<String, ValueDelta>;

/// A value interned in a delta: each distinct string is hashed as a string once per event
/// and copied once per batch, whatever the number of cells it is counted in.
type ValueId = u32;

/// (partner, hour, bots, spec index, filter value): a group of cells, all `Copy`.
type GroupKey = (Uuid, Hour, bool, u8, ValueId);

#[derive(Debug, Default)]
struct Group {
    /// As `CELL_SPECS[spec].dimensions()`.
    builtin: Vec<IdCounts>,
    properties: Vec<(u8, IdCounts)>,
}

type IdCounts = HashMap<ValueId, ValueDelta, BuildHasherDefault<IdHasher>>;

/// What a batch of newly inserted events adds to the breakdown cells: exact, uncapped (a
/// batch is bounded), applied to the stored capped cells with `ValueTable::absorb`.
#[derive(Debug, Default)]
pub struct BreakdownDelta {
    values: Vec<String>,
    ids: HashMap<String, ValueId>,
    groups: HashMap<GroupKey, Group, BuildHasherDefault<IdHasher>>,
}

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
        let mut ids: [Option<ValueId>; BUILTIN_DIMENSIONS.len()] = [None; BUILTIN_DIMENSIONS.len()];
        for (index, dimension) in BUILTIN_DIMENSIONS.iter().enumerate() {
            ids[index] = values.get(*dimension).map(|value| self.intern(value));
        }
        let id_of = |dimension: Dimension| {
            let index = BUILTIN_DIMENSIONS
                .iter()
                .position(|builtin| *builtin == dimension)?;
            ids[index]
        };
        let properties: Vec<(u8, ValueId)> = values
            .properties()
            .filter_map(|(dimension, value)| match dimension {
                Dimension::Property(slot) => Some((slot, self.intern(value))),
                _ => None,
            })
            .collect();
        for (spec_index, spec) in CELL_SPECS.iter().enumerate() {
            let filter_id = match spec.filter {
                None => ValueId::MAX,
                Some(filter) => match id_of(filter) {
                    Some(id) => id,
                    None => continue,
                },
            };
            let key = (partner_id, hour, bots, spec_index as u8, filter_id);
            let group = self.groups.entry(key).or_insert_with(|| Group {
                builtin: vec![IdCounts::default(); spec.dimensions().count()],
                properties: Vec::new(),
            });
            for (dimension, counts) in spec.dimensions().zip(&mut group.builtin) {
                if let Some(id) = id_of(dimension) {
                    count(counts, id, actor);
                }
            }
            if spec.properties {
                for (slot, id) in &properties {
                    let position = match group.properties.iter().position(|(s, _)| s == slot) {
                        Some(position) => position,
                        None => {
                            group.properties.push((*slot, IdCounts::default()));
                            group.properties.len() - 1
                        }
                    };
                    count(&mut group.properties[position].1, *id, actor);
                }
            }
        }
    }

    fn intern(&mut self, value: &str) -> ValueId {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        let id = self.values.len() as ValueId;
        self.values.push(value.to_string());
        self.ids.insert(value.to_string(), id);
        id
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Each cell this delta adds to, with its values (cells without values left out).
    pub fn cells(&self) -> impl Iterator<Item = (CellKey, ValueCounts)> + '_ {
        self.groups.iter().flat_map(move |(key, group)| {
            let (partner_id, hour, bots, spec_index, filter_id) = *key;
            let spec = &CELL_SPECS[usize::from(spec_index)];
            let filter = spec
                .filter
                .map(|filter| (filter, self.values[filter_id as usize].clone()));
            let builtin = spec.dimensions().zip(&group.builtin);
            let properties = group
                .properties
                .iter()
                .map(|(slot, counts)| (Dimension::Property(*slot), counts));
            builtin
                .chain(properties)
                .filter(|(_, counts)| !counts.is_empty())
                .map(move |(dimension, counts)| {
                    let key = CellKey {
                        partner_id,
                        hour,
                        bots,
                        filter: filter.clone(),
                        dimension,
                    };
                    let values = counts
                        .iter()
                        .map(|(id, delta)| (self.values[*id as usize].clone(), delta.clone()))
                        .collect();
                    (key, values)
                })
        })
    }

    /// The same cells under their UTC day (keyed by its first hour): what day rollups add.
    pub fn by_day(&self) -> HashMap<CellKey, ValueCounts> {
        let mut days: HashMap<CellKey, ValueCounts> = HashMap::new();
        for (key, counts) in self.cells() {
            let day = CellKey {
                hour: key.hour.day(),
                ..key
            };
            let day_counts = days.entry(day).or_default();
            for (value, delta) in counts {
                let into = day_counts.entry(value).or_default();
                into.events += delta.events;
                into.actors.extend_from_slice(&delta.actors);
            }
        }
        days
    }
}

fn count(counts: &mut IdCounts, id: ValueId, actor: Option<Coupon>) {
    let delta = counts.entry(id).or_default();
    delta.events += 1;
    if let Some(coupon) = actor {
        delta.actors.push(coupon);
    }
}

/// A multiplicative hash for the delta's small `Copy` keys (ids, uuids, hours): SipHash's
/// protection against chosen keys is not needed for ids this delta hands out itself, and
/// it would be most of a count's cost.
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }
}

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// The coupon of a value string, for the sketch of distinct values folded into "other".
pub(super) fn value_coupon(value: &str) -> Coupon {
    ActorSketch::coupon(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dimension::*;

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

    fn cell(delta: &BreakdownDelta, key: &CellKey) -> ValueCounts {
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

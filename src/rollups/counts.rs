//! Exact counts per hour, and the change one batch of inserted events makes to them and to
//! the sketches.

use std::collections::{BTreeMap, HashMap};

use datasketches::hll::Coupon;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ActorSketch, Hour};
use crate::model::Event;

/// Events of one hour with the same subsystem, event type, validity and bot partition
/// (events whose enrichment says `bot`: reports leave them out unless asked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredCell", into = "StoredCell")]
pub struct CountCell {
    pub subsystem_id: Uuid,
    pub event_type: String,
    pub is_valid: bool,
    pub is_bot: bool,
    pub count: u64,
}

/// A cell as encoded: validity and partition share one byte (bit 0 valid, bit 1 bot),
/// where cells stored before the bot partition held a bool, which postcard writes as the
/// same byte (0 or 1): they read as human cells.
#[derive(Serialize, Deserialize)]
struct StoredCell {
    subsystem_id: Uuid,
    event_type: String,
    class: u8,
    count: u64,
}

impl From<StoredCell> for CountCell {
    fn from(cell: StoredCell) -> CountCell {
        let (is_valid, is_bot) = split_class(cell.class);
        CountCell {
            subsystem_id: cell.subsystem_id,
            event_type: cell.event_type,
            is_valid,
            is_bot,
            count: cell.count,
        }
    }
}

impl From<CountCell> for StoredCell {
    fn from(cell: CountCell) -> StoredCell {
        StoredCell {
            subsystem_id: cell.subsystem_id,
            event_type: cell.event_type,
            class: class_byte(cell.is_valid, cell.is_bot),
            count: cell.count,
        }
    }
}

/// Validity and bot partition as one byte (bit 0 valid, bit 1 bot): how both stores
/// encode them, so a store written before the partition existed reads as humans.
pub fn class_byte(is_valid: bool, is_bot: bool) -> u8 {
    u8::from(is_valid) | (u8::from(is_bot) << 1)
}

/// The inverse of `class_byte`.
pub fn split_class(class: u8) -> (bool, bool) {
    (class & 1 == 1, class & 2 == 2)
}

/// All the cells of one partner-hour, in (subsystem, event type, validity) order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourCounts {
    pub cells: Vec<CountCell>,
}

/// (subsystem, event type, is valid, is bot).
pub type CellKey = (Uuid, String, bool, bool);

impl HourCounts {
    /// Adds `counts` (by cell) to these, keeping the order.
    pub fn add(&mut self, counts: &BTreeMap<CellKey, u64>) {
        let mut merged: BTreeMap<CellKey, u64> = self
            .cells
            .drain(..)
            .map(|cell| {
                let key = (
                    cell.subsystem_id,
                    cell.event_type,
                    cell.is_valid,
                    cell.is_bot,
                );
                (key, cell.count)
            })
            .collect();
        for (key, count) in counts {
            *merged.entry(key.clone()).or_default() += count;
        }
        self.cells = merged
            .into_iter()
            .map(
                |((subsystem_id, event_type, is_valid, is_bot), count)| CountCell {
                    subsystem_id,
                    event_type,
                    is_valid,
                    is_bot,
                    count,
                },
            )
            .collect();
    }

    /// Adds another hour's counts to these.
    pub fn merge(&mut self, other: &HourCounts) {
        let cells: BTreeMap<CellKey, u64> = other
            .cells
            .iter()
            .map(|cell| {
                let key = (
                    cell.subsystem_id,
                    cell.event_type.clone(),
                    cell.is_valid,
                    cell.is_bot,
                );
                (key, cell.count)
            })
            .collect();
        self.add(&cells);
    }

    pub fn total(&self) -> u64 {
        self.cells.iter().map(|cell| cell.count).sum()
    }

    /// These counts as consecutive parts whose encoding (postcard) takes at most
    /// `max_bytes` each (a part holds at least one cell, so a cell larger than that, which
    /// event types' 200 characters make impossible at any sane limit, gets a part alone).
    /// A store writes each part as a row of its own, so no write grows with the number of
    /// event types an hour holds.
    pub fn split(&self, max_bytes: usize) -> Vec<HourCounts> {
        // The length of the cell list, in front of each part's cells.
        const LENGTH_PREFIX: usize = 10;
        let mut parts = Vec::new();
        let mut part = HourCounts::default();
        let mut part_bytes = LENGTH_PREFIX;
        for cell in &self.cells {
            let cell_bytes = postcard::experimental::serialized_size(cell).unwrap_or(usize::MAX);
            if !part.cells.is_empty() && part_bytes.saturating_add(cell_bytes) > max_bytes {
                parts.push(std::mem::take(&mut part));
                part_bytes = LENGTH_PREFIX;
            }
            part_bytes = part_bytes.saturating_add(cell_bytes);
            part.cells.push(cell.clone());
        }
        if !part.cells.is_empty() {
            parts.push(part);
        }
        parts
    }
}

/// Whose actors a sketch holds: an owner (partner or subsystem) in one hour, for all event
/// types (`event_type: None`) or one, among bots' events or humans'.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SketchKey {
    pub owner: Uuid,
    pub event_type: Option<String>,
    pub hour: Hour,
    pub bots: bool,
}

/// What a batch of newly inserted events adds to the rollups.
#[derive(Debug, Default)]
pub struct RollupDelta {
    /// By (partner, hour): the cells to add.
    pub counts: BTreeMap<(Uuid, Hour), BTreeMap<CellKey, u64>>,
    /// The actors to add to each sketch.
    pub actors: HashMap<SketchKey, Vec<Coupon>>,
    /// The keys the last event counted under: a batch's events mostly share them, and
    /// finding them again this way copies no event type.
    last: Option<LastKeys>,
}

#[derive(Debug)]
struct LastKeys {
    hour: (Uuid, Hour),
    cell: CellKey,
    sketches: [SketchKey; 4],
}

impl LastKeys {
    fn of(event: &Event, hour: Hour) -> LastKeys {
        let bots = is_bot(event);
        let sketch = |owner, event_type| SketchKey {
            owner,
            event_type,
            hour,
            bots,
        };
        let event_type = &event.event_type;
        LastKeys {
            hour: (event.partner_id, hour),
            cell: (event.subsystem_id, event_type.clone(), event.is_valid, bots),
            sketches: [
                sketch(event.partner_id, None),
                sketch(event.partner_id, Some(event_type.clone())),
                sketch(event.subsystem_id, None),
                sketch(event.subsystem_id, Some(event_type.clone())),
            ],
        }
    }

    fn fit(&self, event: &Event, hour: Hour) -> bool {
        self.hour == (event.partner_id, hour)
            && self.cell.0 == event.subsystem_id
            && self.cell.1 == event.event_type
            && self.cell.2 == event.is_valid
            && self.cell.3 == is_bot(event)
    }
}

/// Whether `event` counts in the bot partition.
pub fn is_bot(event: &Event) -> bool {
    event
        .enrichment
        .as_ref()
        .is_some_and(|enrichment| enrichment.bot)
}

impl RollupDelta {
    /// Counts `event`: call it only for events the store inserted (not duplicates).
    pub fn add(&mut self, event: &Event) {
        self.add_as(event, event.actor());
    }

    /// Counts `event` as `person` in the sketches (its user's id for a joined anonymous
    /// id), without copying the event.
    pub fn add_as(&mut self, event: &Event, person: Option<&str>) {
        let hour = Hour::of(event.timestamp);
        if !self.last.as_ref().is_some_and(|last| last.fit(event, hour)) {
            self.last = Some(LastKeys::of(event, hour));
        }
        let keys = self.last.as_ref().expect("just set");
        let cells = self.counts.entry(keys.hour).or_default();
        match cells.get_mut(&keys.cell) {
            Some(count) => *count += 1,
            None => {
                cells.insert(keys.cell.clone(), 1);
            }
        }
        let Some(person) = person else {
            return;
        };
        let coupon = ActorSketch::coupon(person);
        for key in &keys.sketches {
            match self.actors.get_mut(key) {
                Some(coupons) => coupons.push(coupon),
                None => {
                    self.actors.insert(key.clone(), vec![coupon]);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The same delta with each hour's entries under its UTC day (keyed by the day's first
    /// hour): what day rollups add.
    pub fn by_day(&self) -> RollupDelta {
        let mut days = RollupDelta::default();
        for ((partner, hour), cells) in &self.counts {
            let day = days.counts.entry((*partner, hour.day())).or_default();
            for (key, count) in cells {
                *day.entry(key.clone()).or_default() += count;
            }
        }
        for (key, coupons) in &self.actors {
            let day = SketchKey {
                hour: key.hour.day(),
                ..key.clone()
            };
            days.actors
                .entry(day)
                .or_default()
                .extend_from_slice(coupons);
        }
        days
    }

    /// The counts this delta holds for one partner, by hour.
    pub fn counts_of(&self, partner: Uuid) -> BTreeMap<Hour, HourCounts> {
        self.counts
            .iter()
            .filter(|((owner, _), _)| *owner == partner)
            .map(|((_, hour), cells)| {
                let mut counts = HourCounts::default();
                counts.add(cells);
                (*hour, counts)
            })
            .collect()
    }

    /// Each sketch this delta feeds, holding only this delta's actors.
    pub fn sketches(&self) -> impl Iterator<Item = (&SketchKey, ActorSketch)> {
        self.actors.iter().map(sketch_of)
    }

    /// The sketches of one hour (only theirs built).
    pub fn sketches_of(&self, hour: Hour) -> impl Iterator<Item = (&SketchKey, ActorSketch)> {
        self.actors
            .iter()
            .filter(move |(key, _)| key.hour == hour)
            .map(sketch_of)
    }
}

fn sketch_of<'a>((key, coupons): (&'a SketchKey, &Vec<Coupon>)) -> (&'a SketchKey, ActorSketch) {
    let mut sketch = ActorSketch::default();
    coupons.iter().for_each(|coupon| sketch.add(*coupon));
    (key, sketch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::sample_event;

    #[test]
    fn counts_split_into_parts_within_the_byte_limit_that_merge_back() {
        let cells: BTreeMap<CellKey, u64> = (0..3_000u64)
            .map(|n| {
                (
                    (
                        Uuid::from_u128(1),
                        format!("{n:0>150}"),
                        n % 2 == 0,
                        n % 3 == 0,
                    ),
                    n + 1,
                )
            })
            .collect();
        let mut counts = HourCounts::default();
        counts.add(&cells);
        let parts = counts.split(40 * 1024);
        assert!(parts.len() > 10, "{} parts", parts.len());
        let mut merged = HourCounts::default();
        for part in &parts {
            let bytes = postcard::to_stdvec(part).unwrap();
            assert!(bytes.len() <= 40 * 1024, "a part of {} bytes", bytes.len());
            merged.merge(part);
        }
        assert_eq!(merged, counts);
        assert!(HourCounts::default().split(1024).is_empty());
    }

    #[test]
    fn a_delta_counts_cells_and_feeds_four_sketches_per_actor() {
        let mut delta = RollupDelta::default();
        let mut first = sample_event("a");
        first.subsystem_id = Uuid::from_u128(7);
        let mut second = first.clone();
        second.is_valid = false;
        delta.add(&first);
        delta.add(&first);
        delta.add(&second);
        let (_, cells) = delta.counts.iter().next().unwrap();
        let mut counts = HourCounts::default();
        counts.add(cells);
        counts.add(cells);
        assert_eq!(counts.total(), 6);
        assert_eq!(
            counts
                .cells
                .iter()
                .map(|cell| (cell.is_valid, cell.count))
                .collect::<Vec<_>>(),
            [(false, 2), (true, 4)]
        );
        assert_eq!(delta.actors.len(), 4);
        assert!(delta.actors.values().all(|coupons| coupons.len() == 3));
    }

    #[test]
    fn bot_events_count_in_their_own_cells_and_sketches() {
        let mut delta = RollupDelta::default();
        let mut human = sample_event("h");
        human.subsystem_id = Uuid::from_u128(7);
        let mut bot = human.clone();
        bot.enrichment = Some(crate::model::Enrichment {
            bot: true,
            ..Default::default()
        });
        delta.add(&human);
        delta.add(&bot);
        delta.add(&human);
        let (_, cells) = delta.counts.iter().next().unwrap();
        let bots: Vec<u64> = cells
            .iter()
            .map(|(key, count)| if key.3 { *count + 100 } else { *count })
            .collect();
        assert_eq!(bots, [2, 101]);
        assert_eq!(delta.actors.len(), 8, "four sketches per partition");
    }

    #[test]
    fn cells_stored_before_the_bot_partition_read_as_human() {
        #[derive(Serialize)]
        struct Before {
            subsystem_id: Uuid,
            event_type: String,
            is_valid: bool,
            count: u64,
        }
        let before = Before {
            subsystem_id: Uuid::from_u128(3),
            event_type: "page_view".into(),
            is_valid: true,
            count: 41,
        };
        let cell: CountCell = postcard::from_bytes(&postcard::to_stdvec(&before).unwrap()).unwrap();
        assert!(cell.is_valid && !cell.is_bot && cell.count == 41);
        let bot = CountCell {
            is_bot: true,
            ..cell.clone()
        };
        let again: CountCell = postcard::from_bytes(&postcard::to_stdvec(&bot).unwrap()).unwrap();
        assert_eq!(again, bot);
    }
}

//! One stored breakdown cell (an hour or a UTC day): its top values kept exactly with a
//! sketch of their actors each, the rest folded into "other", at most `cap` values.
//!
//! Exactness is certified rather than hoped for. A value kept in a cell carries `error`, a
//! bound on events it had before it was admitted (0 when admitted before anything was
//! folded, or by a recount); "other" carries `max_events`, a bound on the events of any
//! single value not kept. A cell written batch by batch admits values first come while it
//! has room and never evicts, so the heavy values of an hour, which arrive in its first
//! minutes, are kept exactly. A recount (Cassandra's fold, `rollups rebuild`) keeps the top
//! `cap` by events, so its bounds are exact. `BreakdownRange` adds the bounds up over a
//! range, so a top value whose bound is 0 is exact against a recount.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use serde::{Deserialize, Serialize};

use super::breakdown_cells::{ValueCounts, value_coupon};
use super::{ActorSketch, ActorUnion};

/// A kept value: its events, the bound on events it had before it was kept, and its
/// actors (an encoded `ActorSketch`; empty when none of its events had an actor).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptValue {
    pub events: u64,
    pub error: u64,
    /// As bytes, not a sequence: the same encoding, decoded by one copy instead of byte by
    /// byte (most of a report's decoding).
    #[serde(with = "serde_bytes")]
    pub actors: Vec<u8>,
}

/// Values kept per cell once its hour or day is over (`seal`), and by a recount. The
/// seeded workload's top pages are exact at this cap (docs/BREAKDOWNS.md).
pub const VALUE_CAP: usize = 1_000;

/// Values kept per cell while its hour or day still takes events, written batch by batch
/// (first come: values are never evicted, only later ones folded).
pub const LIVE_VALUE_CAP: usize = 10_000;

/// The values not kept: their events, a bound on any one's events, and a sketch of the
/// distinct values (encoded `ActorSketch` over value strings; empty when none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherValues {
    pub events: u64,
    pub max_events: u64,
    #[serde(with = "serde_bytes")]
    pub values: Vec<u8>,
}

/// One cell as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueTable {
    pub values: BTreeMap<String, KeptValue>,
    pub other: OtherValues,
}

/// A value's exact events and actors, as a recount of raw events finds them.
#[derive(Default)]
pub struct RecountedValue {
    pub events: u64,
    pub actors: ActorUnion,
}

/// What `ValueTable::check` finds wrong against a recount of the same events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableDisagreement {
    OverCap {
        values: usize,
        cap: usize,
    },
    /// A kept value whose recounted events lie outside `[events, events + error]`.
    KeptValue {
        value: String,
        stored: u64,
        error: u64,
        recounted: u64,
    },
    /// A value not kept with more events than `max_events` allows.
    FoldedValue {
        value: String,
        recounted: u64,
        max_events: u64,
    },
    Total {
        stored: u64,
        recounted: u64,
    },
    /// People's postings that differ from the recount (a join not folded in yet is marked,
    /// and not checked): how many each side has.
    Postings {
        stored: u64,
        recounted: u64,
    },
    /// A day's visit tally that differs from the recount: how many visits each side has.
    Visits {
        stored: u64,
        recounted: u64,
    },
}

impl ValueTable {
    /// Adds one batch's values (exact, from a `BreakdownDelta`), keeping at most `cap`.
    /// Larger values are admitted first, so a batch is applied the same whatever its order.
    /// Fails, changing nothing that matters, on a stored sketch that does not decode.
    pub fn absorb(&mut self, batch: &ValueCounts, cap: usize) -> Result<(), String> {
        let mut ordered: Vec<(&String, &super::ValueDelta)> = batch.iter().collect();
        ordered.sort_unstable_by(|a, b| b.1.events.cmp(&a.1.events).then(a.0.cmp(b.0)));
        let mut folded_max = 0;
        let mut folded_values: Option<ActorSketch> = None;
        for (value, delta) in ordered {
            if let Some(kept) = self.values.get_mut(value.as_str()) {
                kept.events += delta.events;
                kept.actors = with_coupons(&kept.actors, &delta.actors)?;
            } else if self.values.len() < cap {
                let kept = KeptValue {
                    events: delta.events,
                    error: self.other.max_events,
                    actors: with_coupons(&[], &delta.actors)?,
                };
                self.values.insert(value.clone(), kept);
            } else {
                self.other.events += delta.events;
                folded_max = folded_max.max(delta.events);
                if folded_values.is_none() {
                    folded_values = Some(decode(&self.other.values)?);
                }
                if let Some(sketch) = folded_values.as_mut() {
                    sketch.add(value_coupon(value));
                }
            }
        }
        // Any value not kept may have had up to `max_events` before and gained at most the
        // largest fold of this batch.
        self.other.max_events += folded_max;
        if let Some(sketch) = folded_values {
            self.other.values = sketch.to_bytes();
        }
        Ok(())
    }

    /// Cuts a cell written with a larger cap (an hour still taking events, at
    /// `LIVE_VALUE_CAP`) down to `cap`: the top values by events stay as they were, the rest
    /// are folded with their bounds. Sealing an hour once it is over keeps its true top
    /// values however late in the hour they first came.
    pub fn seal(&mut self, cap: usize) -> Result<(), String> {
        if self.values.len() <= cap {
            return Ok(());
        }
        let mut ordered: Vec<(String, KeptValue)> =
            std::mem::take(&mut self.values).into_iter().collect();
        ordered.sort_unstable_by(|a, b| b.1.events.cmp(&a.1.events).then(a.0.cmp(&b.0)));
        let folded = ordered.split_off(cap);
        let mut sketch = decode(&self.other.values)?;
        for (value, kept) in folded {
            self.other.events += kept.events;
            self.other.max_events = self.other.max_events.max(kept.events + kept.error);
            sketch.add(value_coupon(&value));
        }
        self.other.values = sketch.to_bytes();
        self.values = ordered.into_iter().collect();
        Ok(())
    }

    /// A cell from a recount of all its events: the top `cap` by events (ties by value)
    /// kept, each exact; `max_events` the largest value folded.
    pub fn from_recount(recounted: HashMap<String, RecountedValue>, cap: usize) -> ValueTable {
        let mut ordered: Vec<(String, RecountedValue)> = recounted.into_iter().collect();
        ordered.sort_unstable_by(|a, b| b.1.events.cmp(&a.1.events).then(a.0.cmp(&b.0)));
        let mut table = ValueTable::default();
        let mut folded = ActorSketch::for_unions();
        for (rank, (value, recounted)) in ordered.into_iter().enumerate() {
            if rank < cap {
                let actors = if recounted.actors.count() == 0 {
                    Vec::new()
                } else {
                    recounted.actors.to_sketch_for_unions().to_bytes()
                };
                table.values.insert(
                    value,
                    KeptValue {
                        events: recounted.events,
                        error: 0,
                        actors,
                    },
                );
            } else {
                table.other.events += recounted.events;
                table.other.max_events = table.other.max_events.max(recounted.events);
                folded.add(value_coupon(&value));
            }
        }
        if table.other.events > 0 {
            table.other.values = folded.to_bytes();
        }
        table
    }

    pub fn total_events(&self) -> u64 {
        self.values.values().map(|kept| kept.events).sum::<u64>() + self.other.events
    }

    /// Whether this cell is what a store could hold for these recounted events: at most
    /// `cap` values, each kept value within its bound, each other value within
    /// `max_events`, the same total. It holds for a cell written batch by batch in any
    /// order, so `rollups verify` can use it where counts can't be compared for equality.
    pub fn check(&self, recounted: &HashMap<String, u64>, cap: usize) -> Vec<TableDisagreement> {
        let mut found = Vec::new();
        if self.values.len() > cap {
            found.push(TableDisagreement::OverCap {
                values: self.values.len(),
                cap,
            });
        }
        for (value, kept) in &self.values {
            let recount = recounted.get(value).copied().unwrap_or(0);
            if recount < kept.events || recount > kept.events + kept.error {
                found.push(TableDisagreement::KeptValue {
                    value: value.clone(),
                    stored: kept.events,
                    error: kept.error,
                    recounted: recount,
                });
            }
        }
        for (value, recount) in recounted {
            if !self.values.contains_key(value) && *recount > self.other.max_events {
                found.push(TableDisagreement::FoldedValue {
                    value: value.clone(),
                    recounted: *recount,
                    max_events: self.other.max_events,
                });
            }
        }
        let recounted_total: u64 = recounted.values().sum();
        if recounted_total != self.total_events() {
            found.push(TableDisagreement::Total {
                stored: self.total_events(),
                recounted: recounted_total,
            });
        }
        found
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a value table always encodes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<ValueTable, String> {
        postcard::from_bytes(bytes)
            .map_err(|error| format!("a breakdown value table does not decode: {error}"))
    }

    /// This cell as consecutive parts whose encoding takes at most `max_bytes` each (a
    /// part holds at least one value; "other" goes with the first), so a store writes each
    /// as a row of its own, like `HourCounts::split`. A dense sketch is about 8 KiB, so
    /// any limit from 16 KiB keeps every part within it; `join` puts them back.
    pub fn split(&self, max_bytes: usize) -> Vec<ValueTable> {
        // The map's length, and the other bucket's numbers, with room to spare.
        const FIXED: usize = 40;
        // Cut where the values say, not at a running size: a refold that changes, adds or
        // drops one value then leaves every other part as it was, and a store writes only
        // the part that changed (a 256 KiB row rewritten for one person's erasure, times
        // every cell they were in, was most of an erasure's cost).
        let mut parts = Vec::new();
        let mut part = ValueTable {
            values: BTreeMap::new(),
            other: self.other.clone(),
        };
        let mut part_bytes = FIXED + self.other.values.len();
        for (value, kept) in &self.values {
            let entry_bytes =
                postcard::experimental::serialized_size(&(value, kept)).unwrap_or(usize::MAX);
            let full = part_bytes.saturating_add(entry_bytes) > max_bytes;
            if !part.values.is_empty() && (full || starts_part(value)) {
                parts.push(std::mem::take(&mut part));
                part_bytes = FIXED;
            }
            part_bytes = part_bytes.saturating_add(entry_bytes);
            part.values.insert(value.clone(), kept.clone());
        }
        if !part.values.is_empty() || part.other.events > 0 {
            parts.push(part);
        }
        parts
    }

    /// The cell whose `split` gave these parts.
    pub fn join(parts: impl IntoIterator<Item = ValueTable>) -> ValueTable {
        let mut parts = parts.into_iter();
        let Some(mut joined) = parts.next() else {
            return ValueTable::default();
        };
        for part in parts {
            joined.values.extend(part.values);
            if part.other.events > 0 || part.other.max_events > 0 {
                joined.other = part.other;
            }
        }
        joined
    }
}

/// Values a part holds on average, when they are small (`ValueTable::split`).
const VALUES_PER_PART: u64 = 64;

/// Whether a part begins at `value` (about one value in `VALUES_PER_PART`).
fn starts_part(value: &str) -> bool {
    FixedState::with_seed(0)
        .hash_one(value)
        .is_multiple_of(VALUES_PER_PART)
}

/// An encoded sketch, empty meaning no actors (or values) yet: a new one is kept for
/// unions (`ActorSketch::for_unions`), as a report merges a cell's sketches over its range.
pub(super) fn decode(bytes: &[u8]) -> Result<ActorSketch, String> {
    if bytes.is_empty() {
        return Ok(ActorSketch::for_unions());
    }
    ActorSketch::from_bytes(bytes)
}

/// `stored` (an encoded sketch, or empty) with `coupons` added, encoded.
fn with_coupons(stored: &[u8], coupons: &[datasketches::hll::Coupon]) -> Result<Vec<u8>, String> {
    if coupons.is_empty() {
        return Ok(stored.to_vec());
    }
    let mut sketch = decode(stored)?;
    coupons.iter().for_each(|coupon| sketch.add(*coupon));
    Ok(sketch.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollups::ValueDelta;

    #[test]
    fn sketches_as_bytes_encode_as_the_sequences_stored_before() {
        #[derive(Serialize)]
        struct Before {
            events: u64,
            error: u64,
            actors: Vec<u8>,
        }
        let actors: Vec<u8> = (0..=255).collect();
        let before = postcard::to_stdvec(&Before {
            events: 3,
            error: 1,
            actors: actors.clone(),
        })
        .unwrap();
        let kept = KeptValue {
            events: 3,
            error: 1,
            actors,
        };
        assert_eq!(postcard::to_stdvec(&kept).unwrap(), before);
        assert_eq!(postcard::from_bytes::<KeptValue>(&before).unwrap(), kept);
    }

    fn batch(values: impl IntoIterator<Item = (String, u64)>) -> ValueCounts {
        values
            .into_iter()
            .map(|(value, events)| {
                let actors = (0..events)
                    .map(|n| ActorSketch::coupon(&format!("{value}-u{n}")))
                    .collect();
                (value, ValueDelta { events, actors })
            })
            .collect()
    }

    #[test]
    fn the_cap_holds_and_what_is_folded_keeps_totals_and_bounds_true() {
        let mut table = ValueTable::default();
        let mut recounted: HashMap<String, u64> = HashMap::new();
        for round in 0..10u64 {
            // 100 values a batch, half of them seen in every batch, with 1 to 3 events.
            let values: Vec<(String, u64)> = (0..100u64)
                .map(|n| {
                    let value = if n < 50 {
                        format!("v{n}")
                    } else {
                        format!("r{round}-{n}")
                    };
                    (value, 1 + (n + round) % 3)
                })
                .collect();
            for (value, events) in &values {
                *recounted.entry(value.clone()).or_default() += events;
            }
            table.absorb(&batch(values), 120).unwrap();
        }
        assert_eq!(table.values.len(), 120);
        assert!(table.other.events > 0);
        assert!(table.other.max_events >= 3);
        assert_eq!(table.check(&recounted, 120), []);
        assert!(
            (0..50).all(|n| table.values[&format!("v{n}")].error == 0),
            "values kept from the first batch are exact"
        );
        let other_values = decode(&table.other.values).unwrap().estimate();
        assert!(
            (other_values - 430.0).abs() < 10.0,
            "{other_values} values folded"
        );
    }

    #[test]
    fn a_check_finds_a_count_that_a_recount_disagrees_with() {
        let mut table = ValueTable::default();
        table
            .absorb(&batch([("a".to_string(), 3), ("b".to_string(), 1)]), 1)
            .unwrap();
        let recounted = HashMap::from([("a".to_string(), 4), ("b".to_string(), 1)]);
        assert!(matches!(
            table.check(&recounted, 1)[..],
            [
                TableDisagreement::KeptValue { recounted: 4, .. },
                TableDisagreement::Total { .. }
            ]
        ));
        let folded_too_big = HashMap::from([("a".to_string(), 2), ("b".to_string(), 2)]);
        assert!(
            table
                .check(&folded_too_big, 1)
                .iter()
                .any(|found| matches!(found, TableDisagreement::FoldedValue { max_events: 1, .. }))
        );
    }

    #[test]
    fn a_recount_keeps_the_top_values_exactly_and_bounds_the_rest_by_the_largest_folded() {
        let recounted: HashMap<String, RecountedValue> = (1..=50u64)
            .map(|n| {
                let mut actors = ActorUnion::default();
                actors.add_actor(&format!("u{n}"));
                (format!("v{n:02}"), RecountedValue { events: n, actors })
            })
            .collect();
        let table = ValueTable::from_recount(recounted, 10);
        assert_eq!(table.values.len(), 10);
        assert!(table.values.contains_key("v50") && table.values.contains_key("v41"));
        assert_eq!(table.other.max_events, 40);
        assert_eq!(table.other.events, (1..=40).sum::<u64>());
        assert!(table.values.values().all(|kept| kept.error == 0));
    }

    #[test]
    fn a_table_encodes_decodes_and_splits_into_parts_within_the_byte_limit() {
        let mut table = ValueTable::default();
        let values = (0..3_000u64).map(|n| (format!("/page/{n}"), 1 + n % 40));
        table.absorb(&batch(values), 2_000).unwrap();
        let bytes = table.to_bytes();
        assert_eq!(ValueTable::from_bytes(&bytes).unwrap(), table);
        assert!(ValueTable::from_bytes(&bytes[..bytes.len() / 2]).is_err());
        let parts = table.split(16 * 1024);
        assert!(parts.len() > 3, "{} parts", parts.len());
        for part in &parts {
            let size = part.to_bytes().len();
            assert!(size <= 16 * 1024, "a part of {size} bytes");
        }
        assert_eq!(ValueTable::join(parts), table);
        assert!(ValueTable::default().split(1024).is_empty());
    }

    #[test]
    fn a_value_changed_or_dropped_changes_only_its_part() {
        let mut table = ValueTable::default();
        let values = (0..3_000u64).map(|n| (format!("/page/{n}"), 1 + n % 40));
        table.absorb(&batch(values), 2_000).unwrap();
        let parts: Vec<Vec<u8>> = table
            .split(256 * 1024)
            .iter()
            .map(ValueTable::to_bytes)
            .collect();
        assert!(parts.len() > 10, "{} parts", parts.len());
        let value = table
            .values
            .keys()
            .skip(1_000)
            .find(|value| !starts_part(value))
            .unwrap()
            .clone();
        let changed_parts = |table: &ValueTable| {
            let split: Vec<Vec<u8>> = table
                .split(256 * 1024)
                .iter()
                .map(ValueTable::to_bytes)
                .collect();
            assert_eq!(split.len(), parts.len());
            split
                .iter()
                .zip(&parts)
                .filter(|(new, old)| new != old)
                .count()
        };
        let mut changed = table.clone();
        changed.values.get_mut(&value).unwrap().events += 1;
        assert_eq!(changed_parts(&changed), 1);
        let mut dropped = table.clone();
        dropped.values.remove(&value);
        assert_eq!(changed_parts(&dropped), 1);
    }
}

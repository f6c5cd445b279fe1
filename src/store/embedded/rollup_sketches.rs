//! The unique-user sketches a fold recounted (`rollups` has the tables): an hour's or a
//! whole day's encoded to be written (`fold_writes` keeps those that changed), and a day's
//! rebuilt from its hours as stored.

use redb::ReadableTable;

use super::rollups::{DAYS, HOURS, RollupTable, decode_sketch, sketch_key, sketch_range};
use super::storage_error;
use crate::rollups::{ActorUnion, HOURS_PER_DAY, Hour, RollupDelta, SketchKey};
use crate::store::StoreError;

/// Sketches encoded to be written (`fold_writes::sketch_writes`): their keys and bytes. Encoding is
/// done before the write transaction: the events' writers wait while one is open.
pub(super) type EncodedSketches = Vec<(Vec<u8>, Vec<u8>)>;

/// `hour`'s sketches from a recount of its events (`delta`: the same keys, its events
/// counted as the people they now belong to: a sketch cannot forget a member).
pub(super) fn hour_sketches(delta: &RollupDelta, hour: Hour) -> EncodedSketches {
    delta
        .sketches_of(hour)
        .map(|(key, sketch)| (sketch_key(key), sketch.to_bytes()))
        .collect()
}

/// A recount of whole days' sketches.
pub(super) fn day_sketches(delta: &RollupDelta) -> EncodedSketches {
    delta
        .by_day()
        .sketches()
        .map(|(key, sketch)| (sketch_key(key), sketch.to_bytes()))
        .collect()
}

/// Rebuilds the day sketches `hour`'s sketches in `delta` are part of, from the day's
/// hours as stored.
pub(super) fn refresh_day_sketches(
    transaction: &redb::WriteTransaction,
    hour: Hour,
    delta: &RollupDelta,
) -> Result<(), StoreError> {
    let (_, hours) = HOURS.open(transaction)?;
    let (_, mut days) = DAYS.open(transaction)?;
    for key in delta.actors.keys().filter(|key| key.hour == hour) {
        refresh_day_sketch(&hours, &mut days, key)?;
    }
    Ok(())
}

/// Rebuilds the day sketch of the hour sketch `key` from the day's hour sketches as
/// stored (removed when none is left).
pub(super) fn refresh_day_sketch(
    hours: &RollupTable<'_>,
    days: &mut RollupTable<'_>,
    key: &SketchKey,
) -> Result<(), StoreError> {
    let day = key.hour.day();
    let end = Hour(day.0 + HOURS_PER_DAY);
    let (start, stop) = sketch_range(key.owner, key.event_type.as_deref(), key.bots, day, end);
    let mut union = ActorUnion::default();
    let mut any = false;
    for row in hours
        .range::<&[u8]>(start.as_slice()..stop.as_slice())
        .map_err(storage_error)?
    {
        union.add_sketch(&decode_sketch(row.map_err(storage_error)?.1.value())?);
        any = true;
    }
    let of_day = sketch_key(&SketchKey {
        hour: day,
        ..key.clone()
    });
    if any {
        days.insert(of_day.as_slice(), union.to_sketch().to_bytes().as_slice())
            .map_err(storage_error)?;
    } else {
        days.remove(of_day.as_slice()).map_err(storage_error)?;
    }
    Ok(())
}

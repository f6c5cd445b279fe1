//! Byte layouts of the embedded tables' keys. Keys sort as bytes, so a time-ordered
//! scan is one range read: `owner | micros | event id`, read backwards for newest first.
//! Time ascends in the key because events arrive roughly in time order (and server ids
//! are UUIDv7): inserts then land past the last key, where redb leaves full leaves behind
//! instead of half-empty ones.

use std::ops::Bound;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::StoreError;

/// An owned range of keys, as `(start, end)` bounds.
pub type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

pub const OWNER_LEN: usize = 16;
const TIME_LEN: usize = 8;

/// `owner | micros | event id` (the id as `rows::event_id_bytes` encodes it).
pub fn event_key(owner: Uuid, timestamp: DateTime<Utc>, event_id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(OWNER_LEN + TIME_LEN + event_id.len());
    key.extend_from_slice(owner.as_bytes());
    key.extend_from_slice(&micros(timestamp).to_be_bytes());
    key.extend_from_slice(event_id);
    key
}

/// The event time (micros) and the encoded event id of an event key.
pub fn split_event_key(key: &[u8]) -> Result<(i64, &[u8]), StoreError> {
    if key.len() <= OWNER_LEN + TIME_LEN {
        return Err(StoreError::Corrupt("an event key that is too short".into()));
    }
    let (time, event_id) = key[OWNER_LEN..].split_at(TIME_LEN);
    let micros = i64::try_from(u64::from_be_bytes(time.try_into().expect("eight bytes")))
        .map_err(|_| StoreError::Corrupt("an event time out of range".into()))?;
    Ok((micros, event_id))
}

/// The same event key under another owner (subsystem row → partner row).
pub fn reowned(owner: Uuid, key: &[u8]) -> Vec<u8> {
    prefixed(owner, &key[OWNER_LEN..])
}

pub fn prefixed(owner: Uuid, suffix: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(OWNER_LEN + suffix.len());
    key.extend_from_slice(owner.as_bytes());
    key.extend_from_slice(suffix);
    key
}

/// Every key starting with `owner`.
pub fn owner_range(owner: Uuid) -> KeyRange {
    (
        Bound::Included(owner.as_bytes().to_vec()),
        past_owner(owner),
    )
}

/// Keys of `owner` with `from <= timestamp < to`, to be read backwards (newest first);
/// with a cursor (the last key of the previous page), the keys before it. Keys hold whole
/// microseconds, so the range ends after the microsecond holding `to`: within a bound's
/// microsecond, the row's exact time decides (the reader checks it).
pub fn time_range(
    owner: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    cursor: Option<&[u8]>,
) -> Result<KeyRange, StoreError> {
    let start = prefixed(owner, &micros(from).to_be_bytes());
    let end = prefixed(owner, &micros_rounded_up(to).to_be_bytes());
    let Some(cursor) = cursor else {
        return Ok((Bound::Included(start), Bound::Excluded(end)));
    };
    let valid = cursor.len() > OWNER_LEN + TIME_LEN
        && cursor.starts_with(owner.as_bytes())
        && cursor >= start.as_slice()
        && cursor < end.as_slice();
    if !valid {
        return Err(StoreError::InvalidCursor);
    }
    Ok((Bound::Included(start), Bound::Excluded(cursor.to_vec())))
}

/// Borrows an owned key range the way redb's `range` takes it.
pub fn borrowed(range: &KeyRange) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (
        range.0.as_ref().map(Vec::as_slice),
        range.1.as_ref().map(Vec::as_slice),
    )
}

fn past_owner(owner: Uuid) -> Bound<Vec<u8>> {
    match owner.as_u128().checked_add(1) {
        Some(next) => Bound::Excluded(next.to_be_bytes().to_vec()),
        None => Bound::Unbounded,
    }
}

fn micros(timestamp: DateTime<Utc>) -> u64 {
    u64::try_from(timestamp.timestamp_micros()).unwrap_or(0)
}

fn micros_rounded_up(timestamp: DateTime<Utc>) -> u64 {
    let partial = !timestamp.timestamp_subsec_nanos().is_multiple_of(1_000);
    micros(timestamp) + u64::from(partial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::RangeBounds;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn newer_events_sort_last() {
        let owner = Uuid::now_v7();
        assert!(event_key(owner, at(5), b"a") < event_key(owner, at(10), b"a"));
        assert!(event_key(owner, at(5), b"a") < event_key(owner, at(5), b"b"));
    }

    #[test]
    fn an_event_key_splits_back_into_its_time_and_id() {
        let key = event_key(Uuid::now_v7(), at(5), b"id");
        let (micros, id) = split_event_key(&key).unwrap();
        assert_eq!(micros, at(5).timestamp_micros());
        assert_eq!(id, b"id");
        let other = Uuid::now_v7();
        assert_eq!(&reowned(other, &key)[..16], other.as_bytes());
    }

    #[test]
    fn time_range_includes_from_and_excludes_to() {
        let owner = Uuid::now_v7();
        let range = time_range(owner, at(0), at(10), None).unwrap();
        assert!(range.contains(&event_key(owner, at(0), b"x")));
        assert!(range.contains(&event_key(owner, at(9), b"x")));
        assert!(!range.contains(&event_key(owner, at(10), b"x")));
        assert!(!range.contains(&event_key(owner, at(-1), b"x")));
        assert!(!range.contains(&event_key(Uuid::now_v7(), at(5), b"x")));
    }

    #[test]
    fn a_bound_inside_a_microsecond_keeps_that_microsecond_in_range() {
        let owner = Uuid::now_v7();
        let half = chrono::Duration::nanoseconds(500);
        let range = time_range(owner, at(0) + half, at(10) + half, None).unwrap();
        assert!(range.contains(&event_key(owner, at(0), b"x")));
        assert!(range.contains(&event_key(owner, at(10), b"x")));
        assert!(!range.contains(&event_key(owner, at(10) + half * 2, b"x")));
    }

    #[test]
    fn cursor_of_another_owner_or_range_is_refused() {
        let owner = Uuid::now_v7();
        let foreign = event_key(Uuid::now_v7(), at(5), b"x");
        assert!(matches!(
            time_range(owner, at(0), at(10), Some(&foreign)),
            Err(StoreError::InvalidCursor)
        ));
        let outside = event_key(owner, at(20), b"x");
        assert!(matches!(
            time_range(owner, at(0), at(10), Some(&outside)),
            Err(StoreError::InvalidCursor)
        ));
        let inside = event_key(owner, at(5), b"x");
        let (_, end) = time_range(owner, at(0), at(10), Some(&inside)).unwrap();
        assert_eq!(end, Bound::Excluded(inside));
    }
}

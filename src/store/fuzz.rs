//! The fuzz entry point of the stores' cursor decoders (`fuzz/fuzz_targets/store_cursor.rs`,
//! replayed by `tests/fuzz_corpus.rs`): a cursor a decoder accepts stays inside its
//! query, and a Cassandra one re-encodes to the same bytes. Not an API.

use std::ops::Bound;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::cassandra::cursor::{self, QueryIdentity, QueryShape};
use crate::store::embedded::keys;
use crate::store::{EventScope, StoreError};

/// Bucket count of the Cassandra cursors checked here (more than one, as in the tests).
pub const CASSANDRA_BUCKETS: u32 = 3;
/// The owner and time range of `store_cursor`'s query: fixed, so seeds can target it.
pub const CURSOR_OWNER: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
pub const CURSOR_FROM_SECONDS: i64 = 1_800_000_000;
pub const CURSOR_TO_SECONDS: i64 = CURSOR_FROM_SECONDS + 7 * 86_400;

/// Which stores accepted a cursor (in either scope).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CursorAcceptance {
    pub embedded: bool,
    pub cassandra: bool,
}

/// The bytes of a decoded cursor, as both stores read them for a fixed query
/// (`CURSOR_OWNER`, `CURSOR_FROM_SECONDS..CURSOR_TO_SECONDS`, both scopes).
pub fn store_cursor(cursor: &[u8]) -> CursorAcceptance {
    let from = DateTime::from_timestamp(CURSOR_FROM_SECONDS, 0).expect("in range");
    let to = DateTime::from_timestamp(CURSOR_TO_SECONDS, 0).expect("in range");
    let mut accepted = CursorAcceptance::default();
    for scope in [
        EventScope::Partner(CURSOR_OWNER),
        EventScope::Subsystem(CURSOR_OWNER),
    ] {
        let by_scope = check_store_cursor(scope, from, to, cursor);
        accepted.embedded |= by_scope.embedded;
        accepted.cassandra |= by_scope.cassandra;
    }
    accepted
}

pub fn check_store_cursor(
    scope: EventScope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    cursor: &[u8],
) -> CursorAcceptance {
    let mut accepted = CursorAcceptance::default();
    let owner = match scope {
        EventScope::Partner(id) | EventScope::Subsystem(id) => id,
    };
    match keys::time_range(owner, from, to, Some(cursor)) {
        Ok((start, end)) => {
            let (whole_start, whole_end) =
                keys::time_range(owner, from, to, None).expect("no cursor");
            assert_eq!(start, whole_start, "a page starts where its query does");
            assert_eq!(end, Bound::Excluded(cursor.to_vec()));
            let (Bound::Included(low), Bound::Excluded(high)) = (&whole_start, &whole_end) else {
                panic!("a time range is [from, to)");
            };
            assert!(cursor >= low.as_slice() && cursor < high.as_slice());
            let (micros, event_id) = keys::split_event_key(cursor).expect("an event key");
            assert!(!event_id.is_empty());
            assert!(micros >= from.timestamp_micros().max(0));
            assert!(micros <= to.timestamp_micros());
            accepted.embedded = true;
        }
        Err(error) => assert!(matches!(error, StoreError::InvalidCursor), "{error}"),
    }
    let identity = QueryIdentity { scope, from, to };
    let shape = QueryShape::of(from, to, CASSANDRA_BUCKETS);
    match cursor::decode(cursor, identity, shape) {
        Ok(position) => {
            assert!(position.page_size > 0 && position.page_size <= 5_000);
            assert!(position.day_offset < shape.days);
            assert_eq!(position.buckets.len(), CASSANDRA_BUCKETS as usize);
            assert_eq!(
                cursor::encode(identity, &position),
                cursor,
                "an accepted cursor is one the encoder makes"
            );
            accepted.cassandra = true;
        }
        Err(error) => assert!(matches!(error, StoreError::InvalidCursor), "{error}"),
    }
    accepted
}

//! The opaque cursor of an events query: which query it belongs to (scope, owner and time
//! range, checked on the way back in), how far into the range's days the reader got, and
//! for each bucket of that day the driver's paging state plus how many rows of that page
//! were already returned.
//!
//! A cursor comes back from the client, so nothing in it is trusted: every field is
//! re-checked against the request it comes with (same scope, owner and range, a day inside
//! that range, the store's bucket count, a page size the service itself would choose, no
//! more rows consumed than a page holds). Re-checking needs no secret shared by every
//! instance and no key rotation, which a MAC would; the driver's paging state is the one
//! opaque part, and Cassandra itself refuses a tampered one (it can only move within the
//! partition and the bounds the query binds).

use std::ops::RangeInclusive;

use chrono::{DateTime, Utc};

use super::day_range::DayRange;
use crate::store::{EventScope, StoreError};

const VERSION: u8 = 1;
const PARTNER_SCOPE: u8 = b'p';
const SUBSYSTEM_SCOPE: u8 = b's';
const EXHAUSTED: u8 = 0;
const IN_PAGE: u8 = 1;

/// The rows per driver page the service reads with: enough for the request's limit (plus
/// the row that tells whether more follow), within these bounds.
const DRIVER_PAGE_ROWS: RangeInclusive<u32> = 100..=5_000;

/// The driver page size for a request of `limit` rows.
pub fn page_size_for(limit: usize) -> u32 {
    let wanted = u32::try_from(limit.saturating_add(1)).unwrap_or(u32::MAX);
    wanted.clamp(*DRIVER_PAGE_ROWS.start(), *DRIVER_PAGE_ROWS.end())
}

/// Where one bucket's partition of the current day stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketPosition {
    /// Inside the page that starts at `paging_state` (`None`: the first page), with its
    /// first `consumed` rows already returned.
    InPage {
        paging_state: Option<Vec<u8>>,
        consumed: u32,
    },
    Exhausted,
}

impl BucketPosition {
    pub const START: BucketPosition = BucketPosition::InPage {
        paging_state: None,
        consumed: 0,
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPosition {
    /// Days back from the newest day of the range (0 = the day holding `to`).
    pub day_offset: u32,
    /// Rows per driver page; resuming a page must use the size it was read with.
    pub page_size: u32,
    pub buckets: Vec<BucketPosition>,
}

/// What a cursor must match to be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryIdentity {
    pub scope: EventScope,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The shape of the query a cursor is resumed in, which its position must fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryShape {
    /// Days the query's range covers: the position's day must be one of them.
    pub days: u32,
    /// The store's bucket count: one position per bucket.
    pub buckets: u32,
}

impl QueryShape {
    /// The shape of a query over `from..to` on a store of `buckets` buckets.
    pub fn of(from: DateTime<Utc>, to: DateTime<Utc>, buckets: u32) -> QueryShape {
        QueryShape {
            days: DayRange::of(from, to).count,
            buckets,
        }
    }
}

pub fn encode(identity: QueryIdentity, position: &ReadPosition) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    bytes.push(VERSION);
    write_identity(&mut bytes, identity);
    bytes.extend_from_slice(&position.day_offset.to_be_bytes());
    bytes.extend_from_slice(&position.page_size.to_be_bytes());
    bytes.extend_from_slice(&(position.buckets.len() as u32).to_be_bytes());
    for bucket in &position.buckets {
        match bucket {
            BucketPosition::Exhausted => bytes.push(EXHAUSTED),
            BucketPosition::InPage {
                paging_state,
                consumed,
            } => {
                bytes.push(IN_PAGE);
                bytes.extend_from_slice(&consumed.to_be_bytes());
                let state = paging_state.as_deref().unwrap_or_default();
                bytes.extend_from_slice(&(state.len() as u32).to_be_bytes());
                bytes.extend_from_slice(state);
            }
        }
    }
    bytes
}

/// The position in `cursor`, or `InvalidCursor` when it is malformed, belongs to another
/// query (another owner, scope or time range) or another bucket layout, or asks for
/// anything the service would not have written itself (a day outside the range, a page
/// size it never reads with, more rows consumed than a page holds).
pub fn decode(
    cursor: &[u8],
    identity: QueryIdentity,
    shape: QueryShape,
) -> Result<ReadPosition, StoreError> {
    let mut reader = Reader { bytes: cursor };
    if reader.byte()? != VERSION {
        return Err(StoreError::InvalidCursor);
    }
    let mut expected_identity = Vec::new();
    write_identity(&mut expected_identity, identity);
    if reader.take(expected_identity.len())? != expected_identity.as_slice() {
        return Err(StoreError::InvalidCursor);
    }
    let day_offset = reader.u32()?;
    let page_size = reader.u32()?;
    let buckets = shape.buckets;
    let fits = day_offset < shape.days && DRIVER_PAGE_ROWS.contains(&page_size);
    if !fits || reader.u32()? != buckets {
        return Err(StoreError::InvalidCursor);
    }
    let mut positions = Vec::with_capacity(buckets as usize);
    for _ in 0..buckets {
        let position = match reader.byte()? {
            EXHAUSTED => BucketPosition::Exhausted,
            IN_PAGE => {
                let consumed = reader.u32()?;
                if consumed > page_size {
                    return Err(StoreError::InvalidCursor);
                }
                let state_len = reader.u32()? as usize;
                let state = reader.take(state_len)?;
                BucketPosition::InPage {
                    paging_state: (!state.is_empty()).then(|| state.to_vec()),
                    consumed,
                }
            }
            _ => return Err(StoreError::InvalidCursor),
        };
        positions.push(position);
    }
    if !reader.bytes.is_empty() {
        return Err(StoreError::InvalidCursor);
    }
    Ok(ReadPosition {
        day_offset,
        page_size,
        buckets: positions,
    })
}

fn write_identity(bytes: &mut Vec<u8>, identity: QueryIdentity) {
    let (tag, owner) = match identity.scope {
        EventScope::Partner(id) => (PARTNER_SCOPE, id),
        EventScope::Subsystem(id) => (SUBSYSTEM_SCOPE, id),
    };
    bytes.push(tag);
    bytes.extend_from_slice(owner.as_bytes());
    for time in [identity.from, identity.to] {
        bytes.extend_from_slice(&time.timestamp().to_be_bytes());
        bytes.extend_from_slice(&time.timestamp_subsec_nanos().to_be_bytes());
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < count {
            return Err(StoreError::InvalidCursor);
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn identity(owner: Uuid) -> QueryIdentity {
        QueryIdentity {
            scope: EventScope::Partner(owner),
            from: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            to: DateTime::from_timestamp(1_800_086_400, 0).unwrap(),
        }
    }

    const SHAPE: QueryShape = QueryShape {
        days: 5,
        buckets: 3,
    };

    fn position() -> ReadPosition {
        ReadPosition {
            day_offset: 3,
            page_size: 100,
            buckets: vec![
                BucketPosition::Exhausted,
                BucketPosition::InPage {
                    paging_state: Some(vec![1, 2, 3]),
                    consumed: 7,
                },
                BucketPosition::START,
            ],
        }
    }

    #[test]
    fn a_cursor_round_trips_for_its_own_query() {
        let owner = Uuid::now_v7();
        let bytes = encode(identity(owner), &position());
        assert_eq!(decode(&bytes, identity(owner), SHAPE).unwrap(), position());
    }

    #[test]
    fn a_cursor_of_another_query_is_refused() {
        let owner = Uuid::now_v7();
        let bytes = encode(identity(owner), &position());
        let other_owner = identity(Uuid::now_v7());
        let mut other_range = identity(owner);
        other_range.to += chrono::Duration::seconds(1);
        let other_scope = QueryIdentity {
            scope: EventScope::Subsystem(owner),
            ..identity(owner)
        };
        for other in [other_owner, other_range, other_scope] {
            assert!(matches!(
                decode(&bytes, other, SHAPE),
                Err(StoreError::InvalidCursor)
            ));
        }
        assert!(matches!(
            decode(
                &bytes,
                identity(owner),
                QueryShape {
                    buckets: 4,
                    ..SHAPE
                }
            ),
            Err(StoreError::InvalidCursor)
        ));
    }

    #[test]
    fn truncated_or_padded_cursors_are_refused() {
        let owner = Uuid::now_v7();
        let bytes = encode(identity(owner), &position());
        let mut padded = bytes.clone();
        padded.push(0);
        for broken in [
            &bytes[..bytes.len() - 1],
            &padded[..],
            &[][..],
            &[0, 0, 0][..],
        ] {
            assert!(matches!(
                decode(broken, identity(owner), SHAPE),
                Err(StoreError::InvalidCursor)
            ));
        }
    }

    #[test]
    fn a_cursor_asking_for_more_than_the_service_would_read_is_refused() {
        let owner = Uuid::now_v7();
        let huge_page = ReadPosition {
            page_size: 1 << 31,
            ..position()
        };
        let tiny_page = ReadPosition {
            page_size: 1,
            ..position()
        };
        let day_past_the_range = ReadPosition {
            day_offset: SHAPE.days,
            ..position()
        };
        let consumed_past_its_page = ReadPosition {
            buckets: vec![
                BucketPosition::START,
                BucketPosition::START,
                BucketPosition::InPage {
                    paging_state: None,
                    consumed: 101,
                },
            ],
            ..position()
        };
        for crafted in [
            huge_page,
            tiny_page,
            day_past_the_range,
            consumed_past_its_page,
        ] {
            let bytes = encode(identity(owner), &crafted);
            assert!(
                matches!(
                    decode(&bytes, identity(owner), SHAPE),
                    Err(StoreError::InvalidCursor)
                ),
                "{crafted:?}"
            );
        }
    }

    #[test]
    fn page_sizes_follow_the_limit_within_bounds() {
        assert_eq!(page_size_for(1), 100);
        assert_eq!(page_size_for(1_000), 1_001);
        assert_eq!(page_size_for(usize::MAX), 5_000);
    }
}

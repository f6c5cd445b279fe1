//! The opaque cursor of an events query: which query it belongs to (scope, owner and time
//! range, checked on the way back in), how far into the range's days the reader got, and
//! for each bucket of that day the driver's paging state plus how many rows of that page
//! were already returned.

use chrono::{DateTime, Utc};

use crate::store::{EventScope, StoreError};

const VERSION: u8 = 1;
const PARTNER_SCOPE: u8 = b'p';
const SUBSYSTEM_SCOPE: u8 = b's';
const EXHAUSTED: u8 = 0;
const IN_PAGE: u8 = 1;

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

/// The position in `cursor`, or `InvalidCursor` when it is malformed or belongs to
/// another query (another owner, scope or time range) or another bucket layout.
pub fn decode(
    cursor: &[u8],
    identity: QueryIdentity,
    buckets: u32,
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
    if page_size == 0 || reader.u32()? != buckets {
        return Err(StoreError::InvalidCursor);
    }
    let mut positions = Vec::with_capacity(buckets as usize);
    for _ in 0..buckets {
        let position = match reader.byte()? {
            EXHAUSTED => BucketPosition::Exhausted,
            IN_PAGE => {
                let consumed = reader.u32()?;
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
        assert_eq!(decode(&bytes, identity(owner), 3).unwrap(), position());
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
                decode(&bytes, other, 3),
                Err(StoreError::InvalidCursor)
            ));
        }
        assert!(matches!(
            decode(&bytes, identity(owner), 4),
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
                decode(broken, identity(owner), 3),
                Err(StoreError::InvalidCursor)
            ));
        }
    }
}

//! Reading events: the query's time range covers one or more UTC days; each day is one
//! partition per bucket. Days are read newest first, the buckets of a day fetched together
//! and merged in clustering order (`event_time DESC, event_id ASC`), so the result is the
//! same whatever the bucket count. The cursor keeps the day and each bucket's paging state.

use std::collections::VecDeque;

use chrono::{DateTime, NaiveDate, Utc};
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::response::{PagingState, PagingStateResponse};
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::cursor::{self, BucketPosition, QueryIdentity, QueryShape, ReadPosition};
use super::day_range::{DayRange, millisecond_ceiling};
use super::rows::{EventRow, millisecond_time};
use super::{CassandraStore, driver_error};
use crate::store::{EventPage, EventQuery, EventScope, StoreError};

/// Rows one page may read past filters before it returns early with a cursor (as the
/// embedded store does), so a selective filter over a long range can't hold a request.
const MAX_ROWS_SCANNED_PER_PAGE: usize = 50_000;

pub async fn query_events(
    store: &CassandraStore,
    query: &EventQuery,
) -> Result<EventPage, StoreError> {
    let identity = QueryIdentity {
        scope: query.scope,
        from: query.from,
        to: query.to,
    };
    if query.from >= query.to || query.limit == 0 {
        if query.cursor.is_some() {
            return Err(StoreError::InvalidCursor);
        }
        return Ok(EventPage {
            items: Vec::new(),
            next_cursor: None,
        });
    }
    let days = DayRange::of(query.from, query.to);
    let shape = QueryShape::of(query.from, query.to, store.buckets);
    let mut position = match &query.cursor {
        Some(bytes) => cursor::decode(bytes, identity, shape)?,
        None => ReadPosition {
            day_offset: 0,
            page_size: cursor::page_size_for(query.limit),
            buckets: vec![BucketPosition::START; store.buckets as usize],
        },
    };
    let owner = match query.scope {
        EventScope::Partner(id) | EventScope::Subsystem(id) => id,
    };
    let mut days_with_events = days_with_events(store, owner, days, position.day_offset).await?;
    if query.cursor.is_none() {
        match days_with_events.pop_front() {
            Some(newest_with_events) => position.day_offset = newest_with_events,
            None => {
                return Ok(EventPage {
                    items: Vec::new(),
                    next_cursor: None,
                });
            }
        }
    } else {
        days_with_events.retain(|offset| *offset > position.day_offset);
    }
    let statement = match query.scope {
        EventScope::Partner(_) => &store.statements.select_events_by_partner,
        EventScope::Subsystem(_) => &store.statements.select_events_by_subsystem,
    };
    let mut statement = statement.clone();
    statement.set_page_size(i32::try_from(position.page_size).unwrap_or(i32::MAX));
    let mut reader = DayReader {
        session: &store.session,
        statement,
        owner,
        days,
        days_with_events,
        lower: millisecond_time(query.from),
        upper: millisecond_ceiling(query.to),
        day_offset: position.day_offset,
        buckets: position
            .buckets
            .into_iter()
            .map(BucketReader::resuming)
            .collect(),
        resumed_from_cursor: query.cursor.is_some(),
    };

    let mut items = Vec::with_capacity(query.limit.min(1024));
    let mut scanned = 0usize;
    while items.len() < query.limit && scanned < MAX_ROWS_SCANNED_PER_PAGE {
        let Some(row) = reader.take().await? else {
            return Ok(EventPage {
                items,
                next_cursor: None,
            });
        };
        scanned += 1;
        let event = row.into_event(query.with_payload)?;
        // `event_time` has millisecond precision; the exact bounds apply to the full time.
        let in_range = (query.from..query.to).contains(&event.timestamp);
        if in_range && query.filter.matches(&event) {
            items.push(event);
        }
    }
    let next_cursor = if reader.has_more().await? {
        Some(cursor::encode(
            identity,
            &reader.position(position.page_size),
        ))
    } else {
        None
    };
    Ok(EventPage { items, next_cursor })
}

/// Offsets (days back from the newest day of the range) of the days from `from_offset`
/// back to the start of the range on which `owner` has events, newest first.
async fn days_with_events(
    store: &CassandraStore,
    owner: Uuid,
    days: DayRange,
    from_offset: u32,
) -> Result<VecDeque<u32>, StoreError> {
    let newest = days.day(from_offset);
    let oldest = days.day(days.count - 1);
    let rows: Vec<(NaiveDate,)> = store
        .select(&store.statements.select_event_days, (owner, oldest, newest))
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(day,)| days.offset_of(day))
        .collect())
}

struct DayReader<'a> {
    session: &'a Session,
    statement: PreparedStatement,
    owner: Uuid,
    days: DayRange,
    /// Offsets of the older days still to read that have events (from `event_days`).
    days_with_events: VecDeque<u32>,
    lower: DateTime<Utc>,
    upper: DateTime<Utc>,
    day_offset: u32,
    buckets: Vec<BucketReader>,
    resumed_from_cursor: bool,
}

/// One bucket's partition of the current day: the rows of the current driver page not
/// yet returned, and what is needed to resume it.
struct BucketReader {
    page_start: Option<Vec<u8>>,
    consumed: u32,
    rows: VecDeque<EventRow>,
    state: BucketState,
}

enum BucketState {
    /// The page at `page_start` still has to be (re)read, skipping `consumed` rows.
    Unread,
    Read {
        next_page: Option<Vec<u8>>,
    },
    Exhausted,
}

impl BucketReader {
    fn resuming(position: BucketPosition) -> BucketReader {
        match position {
            BucketPosition::Exhausted => BucketReader {
                page_start: None,
                consumed: 0,
                rows: VecDeque::new(),
                state: BucketState::Exhausted,
            },
            BucketPosition::InPage {
                paging_state,
                consumed,
            } => BucketReader {
                page_start: paging_state,
                consumed,
                rows: VecDeque::new(),
                state: BucketState::Unread,
            },
        }
    }

    fn head(&self) -> Option<&EventRow> {
        self.rows.front()
    }
}

impl DayReader<'_> {
    /// The next row in clustering order, or `None` at the end of the range.
    async fn take(&mut self) -> Result<Option<EventRow>, StoreError> {
        let Some(index) = self.next_bucket().await? else {
            return Ok(None);
        };
        let bucket = &mut self.buckets[index];
        bucket.consumed += 1;
        Ok(bucket.rows.pop_front())
    }

    /// Whether another row follows, without taking it.
    async fn has_more(&mut self) -> Result<bool, StoreError> {
        Ok(self.next_bucket().await?.is_some())
    }

    fn position(&self, page_size: u32) -> ReadPosition {
        ReadPosition {
            day_offset: self.day_offset,
            page_size,
            buckets: self
                .buckets
                .iter()
                .map(|bucket| match bucket.state {
                    BucketState::Exhausted => BucketPosition::Exhausted,
                    _ => BucketPosition::InPage {
                        paging_state: bucket.page_start.clone(),
                        consumed: bucket.consumed,
                    },
                })
                .collect(),
        }
    }

    /// The bucket whose head row comes first, moving to older days as buckets run dry.
    async fn next_bucket(&mut self) -> Result<Option<usize>, StoreError> {
        loop {
            self.fill_buckets().await?;
            let first = self
                .buckets
                .iter()
                .enumerate()
                .filter_map(|(index, bucket)| bucket.head().map(|row| (index, row)))
                .min_by(|(_, left), (_, right)| {
                    right
                        .event_time
                        .cmp(&left.event_time)
                        .then_with(|| left.event_id.cmp(&right.event_id))
                })
                .map(|(index, _)| index);
            if first.is_some() {
                return Ok(first);
            }
            let Some(older_day) = self.days_with_events.pop_front() else {
                return Ok(None);
            };
            self.day_offset = older_day;
            self.resumed_from_cursor = false;
            for bucket in &mut self.buckets {
                *bucket = BucketReader::resuming(BucketPosition::START);
            }
        }
    }

    /// Reads pages until every bucket has a head row or is exhausted, all buckets at once.
    async fn fill_buckets(&mut self) -> Result<(), StoreError> {
        let day = self.days.day(self.day_offset);
        let query = PartitionQuery {
            session: self.session,
            statement: &self.statement,
            owner: self.owner,
            day,
            lower: self.lower,
            upper: self.upper,
            resumed_from_cursor: self.resumed_from_cursor,
        };
        let fills = self
            .buckets
            .iter_mut()
            .enumerate()
            .map(|(index, bucket)| query.fill(index as i32, bucket));
        futures::future::try_join_all(fills).await?;
        Ok(())
    }
}

struct PartitionQuery<'a> {
    session: &'a Session,
    statement: &'a PreparedStatement,
    owner: Uuid,
    day: NaiveDate,
    lower: DateTime<Utc>,
    upper: DateTime<Utc>,
    resumed_from_cursor: bool,
}

impl PartitionQuery<'_> {
    async fn fill(&self, bucket_index: i32, bucket: &mut BucketReader) -> Result<(), StoreError> {
        while bucket.rows.is_empty() {
            let page_start = match &bucket.state {
                BucketState::Exhausted => return Ok(()),
                BucketState::Unread => bucket.page_start.clone(),
                BucketState::Read { next_page: None } => {
                    bucket.state = BucketState::Exhausted;
                    return Ok(());
                }
                BucketState::Read {
                    next_page: Some(next),
                } => {
                    bucket.page_start = Some(next.clone());
                    bucket.consumed = 0;
                    Some(next.clone())
                }
            };
            let from_cursor = self.resumed_from_cursor && page_start.is_some();
            let (mut rows, next_page) = self
                .read_page(bucket_index, page_start, from_cursor)
                .await?;
            let skip = (bucket.consumed as usize).min(rows.len());
            rows.drain(..skip);
            bucket.rows = rows;
            bucket.state = BucketState::Read { next_page };
        }
        Ok(())
    }

    async fn read_page(
        &self,
        bucket_index: i32,
        page_start: Option<Vec<u8>>,
        from_cursor: bool,
    ) -> Result<(VecDeque<EventRow>, Option<Vec<u8>>), StoreError> {
        let paging_state = match page_start {
            Some(bytes) => PagingState::new_from_raw_bytes(bytes),
            None => PagingState::start(),
        };
        let values = (self.owner, self.day, bucket_index, self.lower, self.upper);
        let (result, paging) = self
            .session
            .execute_single_page(self.statement, values, paging_state)
            .await
            .map_err(|error| cursor_or_driver_error(error, from_cursor))?;
        let rows = result
            .into_rows_result()
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        let rows = rows
            .rows::<EventRow>()
            .map_err(|error| StoreError::Corrupt(error.to_string()))?
            .collect::<Result<VecDeque<_>, _>>()
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        let next_page = match paging {
            PagingStateResponse::HasMorePages { state } => {
                state.as_bytes_slice().map(|bytes| bytes.to_vec())
            }
            PagingStateResponse::NoMorePages => None,
        };
        Ok((rows, next_page))
    }
}

/// A paging state the server refuses came from a tampered or foreign cursor.
fn cursor_or_driver_error(error: ExecutionError, from_cursor: bool) -> StoreError {
    let refused_request = matches!(
        &error,
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::Invalid | DbError::ProtocolError | DbError::ServerError,
            _
        ))
    );
    if from_cursor && refused_request {
        StoreError::InvalidCursor
    } else {
        driver_error(error)
    }
}

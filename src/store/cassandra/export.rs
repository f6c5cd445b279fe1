//! An export's pages from Cassandra: the owner's days with events in ascending order, each
//! day's buckets read forward (`ORDER BY event_time ASC`, the clustering order reversed)
//! from the position's millisecond and merged in the export's order.
//!
//! A bucket's read stops at its `LIMIT`; the rows past the last millisecond it read whole
//! may lie in other buckets' reads too, so a round returns only the rows before the
//! earliest such millisecond (the watermark) and the next round reads on from it. Within
//! a millisecond rows come by id descending (the reversed clustering), so each round's
//! rows are sorted in the export's order (microseconds from `event_time_ns`, then the id)
//! before anything past the position is returned. Every page is read afresh from its
//! position: nothing is held between pages, and any instance can serve the next.

use chrono::{DateTime, Days, NaiveDate, Utc};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::CassandraStore;
use super::day_range::{DayRange, millisecond_ceiling};
use super::rows::{EventRow, millisecond_time};
use super::statements::{EVENT_COLUMNS, prepare_statement};
use crate::store::{EventScope, ExportPage, ExportPosition, ExportQuery, StoreError, export};

/// Rows one page may read past the filters before it returns, as the listing's pages do.
const MAX_ROWS_SCANNED_PER_PAGE: usize = 50_000;
/// Rows one bucket's read asks for at most at first (the page's limit and one more, so a
/// full page is rarely a second round); doubled while one millisecond of one bucket holds
/// more.
const MAX_FIRST_FETCH: usize = 5_000;

pub struct ExportStatements {
    by_partner: PreparedStatement,
    by_subsystem: PreparedStatement,
}

impl ExportStatements {
    pub async fn prepare(
        session: &Session,
        keyspace: &str,
    ) -> Result<ExportStatements, StoreError> {
        let select = |table: &str, owner: &str| {
            format!(
                "SELECT {EVENT_COLUMNS} FROM {keyspace}.{table} WHERE {owner} = ? AND day = ? \
                 AND bucket = ? AND event_time >= ? AND event_time < ? \
                 ORDER BY event_time ASC LIMIT ?"
            )
        };
        Ok(ExportStatements {
            by_partner: prepare_statement(
                session,
                select("events_by_partner_day", "partner_id"),
                true,
            )
            .await?,
            by_subsystem: prepare_statement(
                session,
                select("events_by_subsystem_day", "subsystem_id"),
                true,
            )
            .await?,
        })
    }
}

pub async fn page(store: &CassandraStore, query: &ExportQuery) -> Result<ExportPage, StoreError> {
    let (owner, statement) = match query.scope {
        EventScope::Partner(id) => (id, &store.export_statements.by_partner),
        EventScope::Subsystem(id) => (id, &store.export_statements.by_subsystem),
    };
    let start = match &query.after {
        Some(after) => after.timestamp.max(query.from),
        None => query.from,
    };
    let mut reading = Reading {
        query,
        position: query.after.clone(),
        page: ExportPage::default(),
        scanned: 0,
    };
    if start >= query.to {
        return Ok(reading.page);
    }
    for day in days_with_events(store, owner, start, query.to).await? {
        let day_start = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        let day_end = day.checked_add_days(Days::new(1)).map_or(query.to, |next| {
            next.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
        });
        let mut lower = millisecond_time(start.max(day_start));
        let upper = millisecond_ceiling(query.to.min(day_end));
        let mut fetch = query.limit.saturating_add(1).clamp(2, MAX_FIRST_FETCH);
        while lower < upper {
            let mut rows = Vec::new();
            let mut watermark: Option<DateTime<Utc>> = None;
            for bucket in 0..store.buckets {
                let bucket = i32::try_from(bucket).unwrap_or(i32::MAX);
                let limit = i32::try_from(fetch).unwrap_or(i32::MAX);
                let read: Vec<EventRow> = store
                    .select(statement, (owner, day, bucket, lower, upper, limit))
                    .await?;
                if read.len() == fetch {
                    let last = read.last().expect("a full read").event_time;
                    watermark = Some(watermark.map_or(last, |mark| mark.min(last)));
                }
                rows.extend(read);
            }
            if watermark == Some(lower) {
                // One millisecond of one bucket holds more than a read: read more.
                fetch = fetch.saturating_mul(2);
                continue;
            }
            if let Some(mark) = watermark {
                rows.retain(|row| row.event_time < mark);
            }
            if reading.take(rows)? {
                return Ok(reading.page);
            }
            match watermark {
                Some(mark) => lower = mark,
                None => break,
            }
        }
    }
    Ok(reading.page)
}

/// One page being read: the rows taken so far and the last position passed.
struct Reading<'a> {
    query: &'a ExportQuery,
    position: Option<ExportPosition>,
    page: ExportPage,
    scanned: usize,
}

impl Reading<'_> {
    /// Takes `rows` in the export's order past the position; whether the page is done.
    fn take(&mut self, rows: Vec<EventRow>) -> Result<bool, StoreError> {
        let mut events = rows
            .into_iter()
            .map(|row| row.into_event(true))
            .collect::<Result<Vec<_>, _>>()?;
        events.sort_by(|a, b| {
            export::order(a.timestamp, &a.event_id).cmp(&export::order(b.timestamp, &b.event_id))
        });
        for event in events {
            let here = ExportPosition::of(&event);
            let passed = self
                .position
                .as_ref()
                .is_some_and(|position| here.cmp_order(position).is_le());
            if passed {
                continue;
            }
            if self.page.items.len() == self.query.limit
                || self.scanned == MAX_ROWS_SCANNED_PER_PAGE
            {
                self.page.next = self.position.clone();
                return Ok(true);
            }
            self.scanned += 1;
            self.position = Some(here);
            let wanted = (self.query.from..self.query.to).contains(&event.timestamp)
                && self.query.filter.matches(&event);
            if wanted {
                self.page.items.push(event);
            }
        }
        Ok(false)
    }
}

/// The owner's days with events from `start`'s to `to`'s, oldest first.
async fn days_with_events(
    store: &CassandraStore,
    owner: Uuid,
    start: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<NaiveDate>, StoreError> {
    let days = DayRange::of(start, to);
    let (oldest, newest) = (days.day(days.count - 1), days.day(0));
    let rows: Vec<(NaiveDate,)> = store
        .select(&store.statements.select_event_days, (owner, oldest, newest))
        .await?;
    let mut days: Vec<NaiveDate> = rows.into_iter().map(|(day,)| day).collect();
    days.sort_unstable();
    Ok(days)
}

//! Export (API.md, "Export"): every event of a scope and time range, ascending by
//! (timestamp, event id), as NDJSON (the listing's event shape, one a line) or CSV (one
//! row an event, a header first). The events come a page at a time from the store
//! (`ExportQuery`), each page starting after the last event of the one before, and are
//! encoded and sent before the next is read: memory stays flat however large the export.
//! A client whose connection broke asks again with `after=` the timestamp and id of the
//! last event it received, and gets the rest, no gap, no repeat.
//!
//! - `person`    one person's events: a user's own and their joined anonymous ids'
//! - `csv_text`  the CSV rows

mod csv_text;
mod person;

use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

pub use person::PersonFilter;

use crate::model::Event;
use crate::store::{ExportQuery, Store, StoreError};

/// Events one page reads: enough to keep the encoder busy, few enough to stay small.
pub const PAGE_EVENTS: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "ndjson" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    /// The bytes of `events` in this format (the CSV header before the first page's).
    fn encode(self, events: &[Event], first: bool) -> Result<Vec<u8>, StoreError> {
        match self {
            Format::Ndjson => {
                let mut out = Vec::with_capacity(events.len() * 512);
                for event in events {
                    serde_json::to_writer(&mut out, event)
                        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
                    out.push(b'\n');
                }
                Ok(out)
            }
            Format::Csv => csv_text::rows(events, first),
        }
    }
}

/// What one export sends: the store's pages of `query` (from its `after`), those of
/// `person` only when given, in `format`.
pub struct Export {
    pub query: ExportQuery,
    pub person: Option<PersonFilter>,
    pub format: Format,
}

struct Progress {
    store: Arc<dyn Store>,
    export: Export,
    first: bool,
    done: bool,
}

/// The export's bytes, page by page; an error ends the stream (the client sees a broken
/// transfer and resumes with `after=`).
pub fn stream(
    store: Arc<dyn Store>,
    export: Export,
) -> impl Stream<Item = Result<Bytes, StoreError>> + Send + 'static {
    let progress = Progress {
        store,
        export,
        first: true,
        done: false,
    };
    futures::stream::try_unfold(progress, |mut progress| async move {
        loop {
            if progress.done {
                return Ok(None);
            }
            let page = progress.store.export_page(&progress.export.query).await?;
            progress.done = page.next.is_none();
            progress.export.query.after = page.next;
            let mut events = page.items;
            if let Some(person) = &progress.export.person {
                events.retain(|event| person.owns(event));
            }
            // A CSV export of nothing still has its header.
            if events.is_empty() && !(progress.first && progress.done) {
                continue;
            }
            let bytes = progress.export.format.encode(&events, progress.first)?;
            progress.first = false;
            return Ok(Some((Bytes::from(bytes), progress)));
        }
    })
}

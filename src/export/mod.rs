//! Export (API.md, "Export"): every event of a scope and time range, ascending by
//! (timestamp, event id), as NDJSON (the listing's event shape, one a line), CSV (one
//! row an event, a header first) or Parquet (one file, row groups sent as they fill); one
//! person's (`model::PersonIds`) when asked. The events come a page at a time from the
//! store (`ExportQuery`), each page starting after the last event of the one before, and
//! are encoded and sent before the next is read: memory stays flat however large the
//! export. A client whose connection broke asks again with `afterTimestamp` and
//! `afterEventId` of the last event it received, and gets the rest, no gap, no repeat.
//!
//! - `csv_text`      the CSV rows
//! - `parquet_file`  the Parquet file

mod csv_text;
mod parquet_file;

use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

use parquet_file::ParquetFile;

use crate::model::{Event, PersonIds};
use crate::store::{ExportQuery, Store, StoreError};

/// Events one page reads: enough to keep the encoder busy, few enough to stay small.
pub const PAGE_EVENTS: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
    Parquet,
}

impl Format {
    const ALL: [Format; 3] = [Format::Ndjson, Format::Csv, Format::Parquet];

    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|format| format.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// A format's encoder over the pages of one export.
enum Encoder {
    Ndjson,
    /// Whether the header is still to be written.
    Csv {
        header: bool,
    },
    Parquet(Box<ParquetFile>),
}

impl Encoder {
    fn new(format: Format) -> Result<Encoder, StoreError> {
        Ok(match format {
            Format::Ndjson => Encoder::Ndjson,
            Format::Csv => Encoder::Csv { header: true },
            Format::Parquet => Encoder::Parquet(Box::new(ParquetFile::new()?)),
        })
    }

    /// The bytes `events` add.
    fn page(&mut self, events: &[Event]) -> Result<Vec<u8>, StoreError> {
        match self {
            Encoder::Ndjson => {
                let mut out = Vec::with_capacity(events.len() * 512);
                for event in events {
                    serde_json::to_writer(&mut out, event)
                        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
                    out.push(b'\n');
                }
                Ok(out)
            }
            Encoder::Csv { header } => {
                let rows = csv_text::rows(events, *header)?;
                *header = false;
                Ok(rows)
            }
            Encoder::Parquet(file) => file.page(events),
        }
    }

    /// The bytes that end the export: a CSV header if no page wrote one, Parquet's footer.
    fn finish(self) -> Result<Vec<u8>, StoreError> {
        match self {
            Encoder::Ndjson => Ok(Vec::new()),
            Encoder::Csv { header } => csv_text::rows(&[], header),
            Encoder::Parquet(file) => file.finish(),
        }
    }
}

/// What one export sends: the store's pages of `query` (from its `after`), those of
/// `person` only when given, in `format`.
pub struct Export {
    pub query: ExportQuery,
    pub person: Option<PersonIds>,
    pub format: Format,
}

struct Progress {
    store: Arc<dyn Store>,
    export: Export,
    /// `None` once the export has ended.
    encoder: Option<Encoder>,
}

/// The export's bytes, page by page; an error ends the stream (the client sees a broken
/// transfer and resumes with `after=`).
pub fn stream(
    store: Arc<dyn Store>,
    export: Export,
) -> Result<impl Stream<Item = Result<Bytes, StoreError>> + Send + 'static, StoreError> {
    let progress = Progress {
        encoder: Some(Encoder::new(export.format)?),
        store,
        export,
    };
    Ok(futures::stream::try_unfold(progress, next_chunk))
}

/// The next chunk of bytes: the next page with events, the last with the format's end.
async fn next_chunk(mut progress: Progress) -> Result<Option<(Bytes, Progress)>, StoreError> {
    loop {
        let Some(encoder) = progress.encoder.as_mut() else {
            return Ok(None);
        };
        let page = progress.store.export_page(&progress.export.query).await?;
        let last = page.next.is_none();
        progress.export.query.after = page.next;
        let mut events = page.items;
        if let Some(person) = &progress.export.person {
            events.retain(|event| person.owns(event));
        }
        let mut bytes = encoder.page(&events)?;
        if last {
            let encoder = progress.encoder.take().expect("checked above");
            bytes.extend(encoder.finish()?);
        }
        if !bytes.is_empty() || last {
            return Ok(Some((Bytes::from(bytes), progress)));
        }
    }
}

//! An export as one Parquet file (the `parquet` crate's column writers, Snappy): the
//! listing's fields as columns, timestamps as UTC microseconds (the export's order is to
//! the microsecond), the structured fields as JSON text. Rows are buffered into row groups
//! of `ROW_GROUP_ROWS` events, each sent as soon as it is written, and the footer (the row
//! groups' metadata) ends the file: memory holds one row group, not the file.

use std::io::Write;
use std::sync::{Arc, Mutex};

use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::model::Event;
use crate::store::StoreError;

/// Events a row group holds (a readable unit of the file; its columns are buffered).
const ROW_GROUP_ROWS: usize = 16_384;

const SCHEMA: &str = "message event {
    required binary eventId (STRING);
    required binary partnerId (STRING);
    required binary subsystemId (STRING);
    required binary eventType (STRING);
    required int64 timestamp (TIMESTAMP(MICROS, true));
    required int64 receivedAt (TIMESTAMP(MICROS, true));
    optional binary userId (STRING);
    optional binary anonymousId (STRING);
    required boolean isValid;
    required binary validationErrors (JSON);
    required binary correlationId (STRING);
    required binary properties (JSON);
    required binary context (JSON);
    optional binary enrichment (JSON);
}";

/// What the writer has written and the stream has not sent yet.
#[derive(Clone, Default)]
struct Sent(Arc<Mutex<Vec<u8>>>);

impl Sent {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("never poisoned: no panic holds it"))
    }
}

impl Write for Sent {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("never poisoned")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct ParquetFile {
    writer: SerializedFileWriter<Sent>,
    sent: Sent,
    rows: Vec<Event>,
    rows_per_group: usize,
}

fn failed(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("writing Parquet: {error}"))
}

impl ParquetFile {
    pub fn new() -> Result<ParquetFile, StoreError> {
        ParquetFile::with_rows_per_group(ROW_GROUP_ROWS)
    }

    fn with_rows_per_group(rows_per_group: usize) -> Result<ParquetFile, StoreError> {
        let schema = Arc::new(parse_message_type(SCHEMA).map_err(failed)?);
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let sent = Sent::default();
        let writer = SerializedFileWriter::new(sent.clone(), schema, Arc::new(properties))
            .map_err(failed)?;
        Ok(ParquetFile {
            writer,
            sent,
            rows: Vec::with_capacity(rows_per_group),
            rows_per_group,
        })
    }

    /// Adds `events`; the bytes of the row groups they filled (the file's magic first).
    pub fn page(&mut self, events: &[Event]) -> Result<Vec<u8>, StoreError> {
        for event in events {
            self.rows.push(event.clone());
            if self.rows.len() == self.rows_per_group {
                self.write_row_group()?;
            }
        }
        Ok(self.sent.take())
    }

    /// The last row group and the footer.
    pub fn finish(mut self) -> Result<Vec<u8>, StoreError> {
        if !self.rows.is_empty() {
            self.write_row_group()?;
        }
        self.writer.close().map_err(failed)?;
        Ok(self.sent.take())
    }

    fn write_row_group(&mut self) -> Result<(), StoreError> {
        let rows = std::mem::take(&mut self.rows);
        let text = |value: &str| ByteArray::from(value.as_bytes().to_vec());
        let mut group = self.writer.next_row_group().map_err(failed)?;
        let mut column = 0;
        while let Some(mut writer) = group.next_column().map_err(failed)? {
            match column {
                4 | 5 => {
                    let values: Vec<i64> = rows
                        .iter()
                        .map(|e| {
                            if column == 4 {
                                e.timestamp
                            } else {
                                e.received_at
                            }
                            .timestamp_micros()
                        })
                        .collect();
                    writer.typed::<Int64Type>().write_batch(&values, None, None)
                }
                8 => {
                    let values: Vec<bool> = rows.iter().map(|e| e.is_valid).collect();
                    writer.typed::<BoolType>().write_batch(&values, None, None)
                }
                6 | 7 | 13 => {
                    let cells: Vec<Option<ByteArray>> = rows
                        .iter()
                        .map(|e| match column {
                            6 => e.user_id.as_deref().map(text),
                            7 => e.anonymous_id.as_deref().map(text),
                            _ => e.enrichment.as_ref().map(json),
                        })
                        .collect();
                    let levels: Vec<i16> =
                        cells.iter().map(|cell| i16::from(cell.is_some())).collect();
                    let values: Vec<ByteArray> = cells.into_iter().flatten().collect();
                    writer
                        .typed::<ByteArrayType>()
                        .write_batch(&values, Some(&levels), None)
                }
                _ => {
                    let values: Vec<ByteArray> = rows
                        .iter()
                        .map(|e| match column {
                            0 => text(&e.event_id),
                            1 => text(&e.partner_id.to_string()),
                            2 => text(&e.subsystem_id.to_string()),
                            3 => text(&e.event_type),
                            9 => json(&e.validation_errors),
                            10 => text(&e.correlation_id),
                            11 => text(e.properties.as_str()),
                            _ => text(e.context.as_str()),
                        })
                        .collect();
                    writer
                        .typed::<ByteArrayType>()
                        .write_batch(&values, None, None)
                }
            }
            .map_err(failed)?;
            writer.close().map_err(failed)?;
            column += 1;
        }
        group.close().map_err(failed)?;
        Ok(())
    }
}

/// A structured field as JSON text.
fn json(value: &impl serde::Serialize) -> ByteArray {
    let text = serde_json::to_vec(value).expect("a model field always serializes");
    ByteArray::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::sample_event;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    #[test]
    fn row_groups_go_out_as_they_fill_and_the_footer_ends_a_readable_file() {
        let events: Vec<Event> = (0..7).map(|n| sample_event(&format!("e{n}"))).collect();
        let mut file = ParquetFile::with_rows_per_group(3).unwrap();
        let mut bytes = file.page(&events[..2]).unwrap();
        bytes.extend(file.page(&events[2..]).unwrap());
        assert_eq!(&bytes[..4], b"PAR1", "two row groups out before the end");
        let groups_only = bytes.len();
        bytes.extend(file.finish().unwrap());
        assert!(bytes.len() > groups_only);

        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 3);
        let mut ids = Vec::new();
        for row in reader.get_row_iter(None).unwrap() {
            let row = row.unwrap();
            for (name, field) in row.get_column_iter() {
                match (name.as_str(), field) {
                    ("eventId", Field::Str(id)) => ids.push(id.clone()),
                    ("userId", field) => assert_eq!(field, &Field::Str("u1".into())),
                    ("anonymousId", field) => assert_eq!(field, &Field::Null),
                    _ => {}
                }
            }
        }
        assert_eq!(ids, ["e0", "e1", "e2", "e3", "e4", "e5", "e6"]);
    }
}

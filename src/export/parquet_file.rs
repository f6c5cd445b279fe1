//! An export as one Parquet file (the `parquet` crate's column writers, Snappy): the
//! listing's fields as columns, timestamps as UTC microseconds (the export's order is to
//! the microsecond), the structured fields as JSON text. Rows are buffered into row groups
//! of `ROW_GROUP_ROWS` events, each sent as soon as it is written, and the footer (the row
//! groups' metadata) ends the file: memory holds one row group, not the file.

use std::io::Write;
use std::sync::{Arc, Mutex};

use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::model::Event;
use crate::store::StoreError;

/// Events a row group holds (a readable unit of the file; its columns are buffered).
const ROW_GROUP_ROWS: usize = 16_384;

/// The longest minimum or maximum a column chunk's statistics keep.
const STATISTICS_BYTES: usize = 64;

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
    columns: Columns,
    rows_per_group: usize,
}

/// A row group's values, column by column, as events arrive (each field copied once,
/// as the bytes the file holds: no whole event is kept).
#[derive(Default)]
struct Columns {
    rows: usize,
    /// eventId, partnerId, subsystemId, eventType.
    leading: [Vec<ByteArray>; 4],
    /// timestamp, receivedAt.
    times: [Vec<i64>; 2],
    /// userId, anonymousId: the values present, and a definition level per row.
    ids: [(Vec<ByteArray>, Vec<i16>); 2],
    valid: Vec<bool>,
    /// validationErrors, correlationId, properties, context.
    trailing: [Vec<ByteArray>; 4],
    enrichment: (Vec<ByteArray>, Vec<i16>),
}

impl Columns {
    fn push(&mut self, event: &Event) {
        let text = |value: &str| ByteArray::from(value.as_bytes().to_vec());
        let optional = |column: &mut (Vec<ByteArray>, Vec<i16>), value: Option<ByteArray>| {
            column.1.push(i16::from(value.is_some()));
            column.0.extend(value);
        };
        self.rows += 1;
        let leading = [
            text(&event.event_id),
            text(&event.partner_id.to_string()),
            text(&event.subsystem_id.to_string()),
            text(&event.event_type),
        ];
        for (column, value) in self.leading.iter_mut().zip(leading) {
            column.push(value);
        }
        self.times[0].push(event.timestamp.timestamp_micros());
        self.times[1].push(event.received_at.timestamp_micros());
        optional(&mut self.ids[0], event.user_id.as_deref().map(text));
        optional(&mut self.ids[1], event.anonymous_id.as_deref().map(text));
        self.valid.push(event.is_valid);
        let trailing = [
            json(&event.validation_errors),
            text(&event.correlation_id),
            text(event.properties.as_str()),
            text(event.context.as_str()),
        ];
        for (column, value) in self.trailing.iter_mut().zip(trailing) {
            column.push(value);
        }
        optional(&mut self.enrichment, event.enrichment.as_ref().map(json));
    }
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
        // Statistics per column chunk only, their values cut short: page-level ones (the
        // column index) and whole JSON texts as minima and maxima are kept until the footer.
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_statistics_truncate_length(Some(STATISTICS_BYTES))
            .build();
        let sent = Sent::default();
        let writer = SerializedFileWriter::new(sent.clone(), schema, Arc::new(properties))
            .map_err(failed)?;
        Ok(ParquetFile {
            writer,
            sent,
            columns: Columns::default(),
            rows_per_group,
        })
    }

    /// Adds `events`; the bytes of the row groups they filled (the file's magic first).
    pub fn page(&mut self, events: &[Event]) -> Result<Vec<u8>, StoreError> {
        for event in events {
            self.columns.push(event);
            if self.columns.rows == self.rows_per_group {
                self.write_row_group()?;
            }
        }
        Ok(self.sent.take())
    }

    /// The last row group and the footer.
    pub fn finish(mut self) -> Result<Vec<u8>, StoreError> {
        if self.columns.rows > 0 {
            self.write_row_group()?;
        }
        self.writer.close().map_err(failed)?;
        Ok(self.sent.take())
    }

    fn write_row_group(&mut self) -> Result<(), StoreError> {
        let columns = std::mem::take(&mut self.columns);
        let mut group = self.writer.next_row_group().map_err(failed)?;
        let mut index = 0;
        while let Some(mut writer) = group.next_column().map_err(failed)? {
            match index {
                4 | 5 => {
                    writer
                        .typed::<Int64Type>()
                        .write_batch(&columns.times[index - 4], None, None)
                }
                8 => writer
                    .typed::<BoolType>()
                    .write_batch(&columns.valid, None, None),
                _ => {
                    let (values, levels) = match index {
                        0..=3 => (&columns.leading[index], None),
                        6 | 7 => (&columns.ids[index - 6].0, Some(&columns.ids[index - 6].1)),
                        9..=12 => (&columns.trailing[index - 9], None),
                        _ => (&columns.enrichment.0, Some(&columns.enrichment.1)),
                    };
                    let levels = levels.map(Vec::as_slice);
                    writer
                        .typed::<ByteArrayType>()
                        .write_batch(values, levels, None)
                }
            }
            .map_err(failed)?;
            writer.close().map_err(failed)?;
            index += 1;
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

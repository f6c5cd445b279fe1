//! An export's CSV (RFC 4180, through the `csv` crate): one row an event with the listing's
//! fields as columns, in the listing's names. Text fields as they are, numbers and
//! booleans as JSON writes them, absent ones empty, and the structured ones
//! (`properties`, `context`, `validationErrors`, `enrichment`) as their JSON text.

use crate::model::Event;
use crate::store::StoreError;

/// The columns, in order (the listing's field names).
pub const COLUMNS: [&str; 14] = [
    "eventId",
    "partnerId",
    "subsystemId",
    "eventType",
    "timestamp",
    "receivedAt",
    "userId",
    "anonymousId",
    "isValid",
    "validationErrors",
    "correlationId",
    "properties",
    "context",
    "enrichment",
];

/// The rows of `events`, after the header when `header`.
pub fn rows(events: &[Event], header: bool) -> Result<Vec<u8>, StoreError> {
    let failed = |error: csv::Error| StoreError::Corrupt(format!("a CSV row: {error}"));
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(events.len() * 512));
    if header {
        writer.write_record(COLUMNS).map_err(failed)?;
    }
    for event in events {
        let value =
            serde_json::to_value(event).map_err(|error| StoreError::Corrupt(error.to_string()))?;
        let cells = COLUMNS.map(|column| match value.get(column) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        });
        writer.write_record(&cells).map_err(failed)?;
    }
    writer
        .into_inner()
        .map_err(|error| StoreError::Corrupt(format!("a CSV page: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::sample_event;

    #[test]
    fn each_event_is_one_row_of_the_listing_fields_quoted_where_needed() {
        let event = sample_event("e1");
        let text = String::from_utf8(rows(std::slice::from_ref(&event), true).unwrap()).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_string)
            .collect();
        assert_eq!(headers, COLUMNS);
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 1);
        let cell =
            |name: &str| records[0][COLUMNS.iter().position(|c| *c == name).unwrap()].to_string();
        assert_eq!(cell("eventId"), "e1");
        assert_eq!(cell("userId"), "u1");
        assert_eq!(cell("anonymousId"), "");
        assert_eq!(cell("isValid"), "true");
        let properties: serde_json::Value = serde_json::from_str(&cell("properties")).unwrap();
        assert_eq!(
            properties,
            serde_json::to_value(&event).unwrap()["properties"]
        );
        assert!(
            !String::from_utf8(rows(&[event], false).unwrap())
                .unwrap()
                .starts_with("eventId")
        );
    }
}

//! The embedded store's own row encoding: a version byte, then the event's fields in
//! postcard (a compact serde binary format). What the row's key already says (owner,
//! time to the microsecond, event id) is not repeated, `properties` and `context` are the
//! JSON text they arrived as, and ids that are canonical UUIDs take 16 bytes, not 36.
//! Format 2 appends the event's enrichment (postcard `Option<Enrichment>`, so a change
//! to `Enrichment`'s fields is a new format); format 1 rows read as not enriched.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{Enrichment, Event, JsonObject};
use crate::store::StoreError;

/// Bumped whenever the layout below changes; rows of an unknown format are refused.
const ROW_FORMAT_V1: u8 = 1;
/// `EventRow`, then the enrichment.
const ROW_FORMAT_V2: u8 = 2;

/// Text that is usually a UUID: those are kept as their 16 bytes.
#[derive(Serialize, Deserialize)]
enum CompactId<'a> {
    Uuid([u8; 16]),
    Text(&'a str),
}

impl<'a> CompactId<'a> {
    fn of(text: &'a str) -> CompactId<'a> {
        match Uuid::try_parse(text) {
            Ok(uuid) if uuid.hyphenated().to_string() == text => CompactId::Uuid(*uuid.as_bytes()),
            _ => CompactId::Text(text),
        }
    }

    fn into_string(self) -> String {
        match self {
            CompactId::Uuid(bytes) => Uuid::from_bytes(bytes).hyphenated().to_string(),
            CompactId::Text(text) => text.to_string(),
        }
    }
}

/// The bytes of an event id inside a key: a tag, then 16 bytes or the text.
pub fn event_id_bytes(event_id: &str) -> Vec<u8> {
    match CompactId::of(event_id) {
        CompactId::Uuid(bytes) => {
            let mut encoded = Vec::with_capacity(17);
            encoded.push(0);
            encoded.extend_from_slice(&bytes);
            encoded
        }
        CompactId::Text(text) => {
            let mut encoded = Vec::with_capacity(text.len() + 1);
            encoded.push(1);
            encoded.extend_from_slice(text.as_bytes());
            encoded
        }
    }
}

pub fn event_id_from_bytes(bytes: &[u8]) -> Result<String, StoreError> {
    match bytes.split_first() {
        Some((0, uuid)) => Uuid::from_slice(uuid)
            .map(|uuid| uuid.hyphenated().to_string())
            .map_err(|error| StoreError::Corrupt(error.to_string())),
        Some((1, text)) => {
            String::from_utf8(text.to_vec()).map_err(|error| StoreError::Corrupt(error.to_string()))
        }
        _ => Err(StoreError::Corrupt(
            "an event key without an event id".into(),
        )),
    }
}

#[derive(Serialize, Deserialize)]
struct EventRow<'a> {
    subsystem_id: [u8; 16],
    event_type: &'a str,
    /// The nanoseconds below the key's microsecond.
    timestamp_sub_micros: u16,
    received_at_nanos: i64,
    user_id: Option<&'a str>,
    anonymous_id: Option<&'a str>,
    properties: &'a str,
    context: &'a str,
    is_valid: bool,
    validation_errors: Vec<&'a str>,
    #[serde(borrow)]
    correlation_id: CompactId<'a>,
}

pub fn encode(event: &Event) -> Result<Vec<u8>, StoreError> {
    let row = EventRow {
        subsystem_id: *event.subsystem_id.as_bytes(),
        event_type: &event.event_type,
        timestamp_sub_micros: (event.timestamp.timestamp_subsec_nanos() % 1_000) as u16,
        received_at_nanos: nanos_of(event.received_at)?,
        user_id: event.user_id.as_deref(),
        anonymous_id: event.anonymous_id.as_deref(),
        properties: event.properties.as_str(),
        context: event.context.as_str(),
        is_valid: event.is_valid,
        validation_errors: event.validation_errors.iter().map(String::as_str).collect(),
        correlation_id: CompactId::of(&event.correlation_id),
    };
    // Sized once from the event's own estimate (above the encoded size: postcard's
    // lengths are varints), so the writes below never grow the buffer.
    let mut bytes = Vec::with_capacity(event.approximate_size());
    bytes.push(ROW_FORMAT_V2);
    postcard::to_io(&row, &mut bytes).map_err(corrupt)?;
    postcard::to_io(&event.enrichment, &mut bytes).map_err(corrupt)?;
    Ok(bytes)
}

/// The part of an event its key holds.
pub struct KeyParts {
    pub partner_id: Uuid,
    pub micros: i64,
    pub event_id: String,
}

/// A row's fields borrowed from its bytes, before anything is copied or parsed: a query
/// checks the cheap ones (time, type, user, validity) first and builds the event, JSON
/// payload included, only for the rows it returns.
pub struct RowView<'a> {
    row: EventRow<'a>,
    /// The encoded enrichment (empty in a format 1 row), decoded with the event.
    enrichment: &'a [u8],
    timestamp: DateTime<Utc>,
}

/// The view of a row whose key holds the time `micros`.
pub fn view(micros: i64, bytes: &[u8]) -> Result<RowView<'_>, StoreError> {
    let (row, enrichment) = match bytes.split_first() {
        Some((&ROW_FORMAT_V1, encoded)) => {
            (postcard::from_bytes(encoded).map_err(corrupt)?, &[][..])
        }
        Some((&ROW_FORMAT_V2, encoded)) => {
            postcard::take_from_bytes::<EventRow>(encoded).map_err(corrupt)?
        }
        _ => {
            return Err(StoreError::Corrupt(
                "an event row in an unknown format (written by a newer release?)".into(),
            ));
        }
    };
    let timestamp_nanos = micros * 1_000 + i64::from(row.timestamp_sub_micros);
    Ok(RowView {
        row,
        enrichment,
        timestamp: DateTime::from_timestamp_nanos(timestamp_nanos),
    })
}

impl<'a> RowView<'a> {
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }

    pub fn event_type(&self) -> &'a str {
        self.row.event_type
    }

    pub fn user_id(&self) -> Option<&'a str> {
        self.row.user_id
    }

    pub fn anonymous_id(&self) -> Option<&'a str> {
        self.row.anonymous_id
    }

    pub fn is_valid(&self) -> bool {
        self.row.is_valid
    }

    /// The whole event; without `payload`, `properties` and `context` are left empty
    /// (and not parsed).
    pub fn into_event(self, key: KeyParts, payload: bool) -> Result<Event, StoreError> {
        let row = self.row;
        let enrichment = match self.enrichment {
            [] => None,
            encoded => postcard::from_bytes::<Option<Enrichment>>(encoded).map_err(corrupt)?,
        };
        let object = |text: &str| match payload {
            true => JsonObject::parse(text.to_string()).map_err(StoreError::Corrupt),
            false => Ok(JsonObject::empty()),
        };
        Ok(Event {
            event_id: key.event_id,
            partner_id: key.partner_id,
            subsystem_id: Uuid::from_bytes(row.subsystem_id),
            event_type: row.event_type.to_string(),
            timestamp: self.timestamp,
            received_at: DateTime::from_timestamp_nanos(row.received_at_nanos),
            user_id: row.user_id.map(str::to_string),
            anonymous_id: row.anonymous_id.map(str::to_string),
            properties: object(row.properties)?,
            context: object(row.context)?,
            is_valid: row.is_valid,
            validation_errors: row
                .validation_errors
                .into_iter()
                .map(str::to_string)
                .collect(),
            correlation_id: row.correlation_id.into_string(),
            enrichment,
            client_event_id: false,
        })
    }
}

/// The event of a row; without `payload`, `properties` and `context` are left empty.
pub fn decode(key: KeyParts, bytes: &[u8], payload: bool) -> Result<Event, StoreError> {
    let micros = key.micros;
    view(micros, bytes)?.into_event(key, payload)
}

/// Exact times are kept as nanoseconds (what `Utc::now()` gives), covering 1677..2262.
fn nanos_of(time: DateTime<Utc>) -> Result<i64, StoreError> {
    time.timestamp_nanos_opt()
        .ok_or_else(|| StoreError::Corrupt(format!("time out of the storable range: {time}")))
}

fn corrupt(error: postcard::Error) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::sample_event;

    fn round_trip(event: &Event) -> Event {
        let key = KeyParts {
            partner_id: event.partner_id,
            micros: event.timestamp.timestamp_micros(),
            event_id: event_id_from_bytes(&event_id_bytes(&event.event_id)).unwrap(),
        };
        decode(key, &encode(event).unwrap(), true).unwrap()
    }

    #[test]
    fn a_row_round_trips_to_the_same_event() {
        let mut event = sample_event("client-id-1");
        event.properties = JsonObject::parse(r#"{"b": 2,  "a": [1.50]}"#.into()).unwrap();
        event.validation_errors = vec!["/a: bad".into()];
        event.correlation_id = Uuid::new_v4().to_string();
        event.enrichment = Some(Enrichment {
            page: Some("/pricing".into()),
            device_type: Some(crate::model::DeviceType::Mobile),
            bot: true,
            ..Enrichment::default()
        });
        let expected = Event {
            client_event_id: false,
            ..event.clone()
        };
        assert_eq!(round_trip(&event), expected);
    }

    #[test]
    fn uuid_ids_are_compact_and_other_text_is_kept_exactly() {
        let uuid = Uuid::now_v7().to_string();
        assert_eq!(event_id_bytes(&uuid).len(), 17);
        assert_eq!(event_id_from_bytes(&event_id_bytes(&uuid)).unwrap(), uuid);
        for text in [uuid.to_uppercase(), "order-42".to_string(), String::new()] {
            assert_eq!(event_id_from_bytes(&event_id_bytes(&text)).unwrap(), text);
        }
    }

    #[test]
    fn a_row_of_the_first_format_reads_as_not_enriched() {
        let mut event = sample_event("before-enrichment");
        let mut bytes = encode(&event).unwrap();
        bytes[0] = ROW_FORMAT_V1;
        bytes.pop(); // postcard's `None` is one zero byte
        event.client_event_id = false;
        assert_eq!(event.enrichment, None);
        assert_eq!(round_trip_bytes(&event, &bytes), event);
    }

    fn round_trip_bytes(event: &Event, bytes: &[u8]) -> Event {
        let key = KeyParts {
            partner_id: event.partner_id,
            micros: event.timestamp.timestamp_micros(),
            event_id: event.event_id.clone(),
        };
        decode(key, bytes, true).unwrap()
    }

    #[test]
    fn rows_of_an_unknown_format_are_refused() {
        let key = KeyParts {
            partner_id: Uuid::nil(),
            micros: 0,
            event_id: "x".into(),
        };
        assert!(matches!(
            decode(key, b"{\"json\":1}", true),
            Err(StoreError::Corrupt(_))
        ));
    }
}

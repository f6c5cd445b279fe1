//! The events tables' row shape, and where an event's rows go: its UTC day, its bucket
//! (a stable hash of the event id) and the fingerprint that tells a retry from a resend.

use chrono::{DateTime, NaiveDate, Utc};
use scylla::deserialize::{
    DeserializationError, FrameSlice, TypeCheckError, value::DeserializeValue,
};
use scylla::frame::response::result::ColumnType;
use scylla::serialize::SerializationError;
use scylla::serialize::value::SerializeValue;
use scylla::serialize::writers::{CellWriter, WrittenCellProof};
use scylla::{DeserializeRow, SerializeRow};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::model::{Event, JsonObject};
use crate::store::StoreError;

/// One row of `events_by_partner_day` / `events_by_subsystem_day`, in
/// `statements::EVENT_COLUMNS` order (the same struct serves both tables).
#[derive(Debug, Clone, SerializeRow, DeserializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
pub struct EventRow {
    pub event_time: DateTime<Utc>,
    pub event_id: String,
    pub event_time_ns: i64,
    pub partner_id: Uuid,
    pub subsystem_id: Uuid,
    pub day: NaiveDate,
    pub bucket: i32,
    pub event_type: String,
    pub user_id: Absent<String>,
    pub anonymous_id: Absent<String>,
    pub properties: String,
    pub context: String,
    pub is_valid: bool,
    /// Unset when empty: an insert of a non-frozen list also writes a tombstone for the
    /// list it replaces, and most events have no errors.
    pub validation_errors: Absent<Vec<String>>,
    pub correlation_id: String,
    pub received_at: DateTime<Utc>,
    pub received_at_ns: i64,
    /// `model::Enrichment` as JSON; null in rows written before enrichment.
    pub enrichment: Absent<String>,
}

/// A nullable column that is left unset, not bound to null, when it has no value. A null
/// in an insert is a tombstone, and every read of the partition (folds, event queries)
/// steps over it: with one per event, reads of large days counted as many tombstones as
/// rows. Reads it as `Option`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Absent<T>(pub Option<T>);

impl<T: SerializeValue> SerializeValue for Absent<T> {
    fn serialize<'b>(
        &self,
        typ: &ColumnType,
        writer: CellWriter<'b>,
    ) -> Result<WrittenCellProof<'b>, SerializationError> {
        match &self.0 {
            Some(value) => value.serialize(typ, writer),
            None => Ok(writer.set_unset()),
        }
    }
}

impl<'frame, 'metadata, T> DeserializeValue<'frame, 'metadata> for Absent<T>
where
    T: DeserializeValue<'frame, 'metadata>,
{
    fn type_check(typ: &ColumnType) -> Result<(), TypeCheckError> {
        <Option<T>>::type_check(typ)
    }

    fn deserialize(
        typ: &'metadata ColumnType<'metadata>,
        value: Option<FrameSlice<'frame>>,
    ) -> Result<Self, DeserializationError> {
        <Option<T>>::deserialize(typ, value).map(Absent)
    }
}

/// Where an event's rows live: the clustering position and partition parts it shares
/// between both tables, as recorded in its de-duplication claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub day: NaiveDate,
    pub event_time: DateTime<Utc>,
    pub bucket: i32,
}

impl Placement {
    pub fn of(event: &Event, buckets: u32) -> Placement {
        Placement {
            day: event.timestamp.date_naive(),
            event_time: millisecond_time(event.timestamp),
            bucket: bucket_of(&event.event_id, buckets),
        }
    }
}

/// `timestamp` columns hold milliseconds; this is the value Cassandra keeps.
pub fn millisecond_time(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time)
}

/// FNV-1a of the id: stable across processes and releases (unlike `std`'s hasher), so
/// every writer and reader agrees on an event's bucket.
pub fn bucket_of(event_id: &str, buckets: u32) -> i32 {
    if buckets <= 1 {
        return 0;
    }
    let hash = event_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    i32::try_from(hash % u64::from(buckets)).unwrap_or(0)
}

/// 16 bytes of SHA-256 over the event's JSON: equal only for the very same write (a
/// retried batch), different for a resend (it has its own receive time and correlation id).
pub fn fingerprint(event: &Event) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(event).map_err(|error| StoreError::Corrupt(error.to_string()))?;
    Ok(Sha256::digest(&json)[..16].to_vec())
}

impl EventRow {
    pub fn from_event(event: &Event, placement: Placement) -> Result<EventRow, StoreError> {
        Ok(EventRow {
            event_time: placement.event_time,
            event_id: event.event_id.clone(),
            event_time_ns: nanos_of(event.timestamp)?,
            partner_id: event.partner_id,
            subsystem_id: event.subsystem_id,
            day: placement.day,
            bucket: placement.bucket,
            event_type: event.event_type.clone(),
            user_id: Absent(event.user_id.clone()),
            anonymous_id: Absent(event.anonymous_id.clone()),
            properties: event.properties.as_str().to_string(),
            context: event.context.as_str().to_string(),
            is_valid: event.is_valid,
            validation_errors: Absent(
                (!event.validation_errors.is_empty()).then(|| event.validation_errors.clone()),
            ),
            correlation_id: event.correlation_id.clone(),
            received_at: millisecond_time(event.received_at),
            received_at_ns: nanos_of(event.received_at)?,
            enrichment: Absent(
                event
                    .enrichment
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|error| StoreError::Corrupt(error.to_string()))?,
            ),
        })
    }

    /// The event; without `payload`, `properties` and `context` are left empty.
    pub fn into_event(self, payload: bool) -> Result<Event, StoreError> {
        let (properties, context) = if payload {
            (json_object(self.properties)?, json_object(self.context)?)
        } else {
            (JsonObject::empty(), JsonObject::empty())
        };
        Ok(Event {
            event_id: self.event_id,
            partner_id: self.partner_id,
            subsystem_id: self.subsystem_id,
            event_type: self.event_type,
            timestamp: DateTime::from_timestamp_nanos(self.event_time_ns),
            received_at: DateTime::from_timestamp_nanos(self.received_at_ns),
            user_id: self.user_id.0,
            anonymous_id: self.anonymous_id.0,
            properties,
            context,
            is_valid: self.is_valid,
            validation_errors: self.validation_errors.0.unwrap_or_default(),
            correlation_id: self.correlation_id,
            enrichment: self
                .enrichment
                .0
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|error| StoreError::Corrupt(format!("an event's enrichment: {error}")))?,
            client_event_id: false,
        })
    }

    /// Approximate bytes this row adds to a batch, to keep batches under the limit.
    pub fn approximate_size(&self) -> usize {
        const FIXED_COLUMNS: usize = 128;
        FIXED_COLUMNS
            + self.event_id.len()
            + self.event_type.len()
            + self.user_id.0.as_ref().map_or(0, String::len)
            + self.anonymous_id.0.as_ref().map_or(0, String::len)
            + self.properties.len()
            + self.context.len()
            + self.enrichment.0.as_ref().map_or(0, String::len)
            + self
                .validation_errors
                .0
                .iter()
                .flatten()
                .map(|error| error.len() + 4)
                .sum::<usize>()
            + self.correlation_id.len()
    }
}

fn json_object(text: String) -> Result<JsonObject, StoreError> {
    JsonObject::parse(text).map_err(StoreError::Corrupt)
}

/// Exact times are kept as nanoseconds (what `Utc::now()` gives), covering 1677..2262.
fn nanos_of(time: DateTime<Utc>) -> Result<i64, StoreError> {
    time.timestamp_nanos_opt()
        .ok_or_else(|| StoreError::Corrupt(format!("time out of the storable range: {time}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::sample_event;

    #[test]
    fn buckets_are_stable_and_in_range() {
        assert_eq!(bucket_of("anything", 1), 0);
        let first = bucket_of("order-42", 16);
        assert_eq!(first, bucket_of("order-42", 16));
        assert!((0..16).contains(&first));
        let spread: std::collections::HashSet<i32> =
            (0..200).map(|i| bucket_of(&format!("e{i}"), 8)).collect();
        assert_eq!(spread.len(), 8);
    }

    #[test]
    fn a_row_round_trips_to_the_same_event() {
        use crate::model::Event;
        let event = sample_event("round-trip");
        let placement = Placement::of(&event, 4);
        let row = EventRow::from_event(&event, placement).unwrap();
        let expected = Event {
            enrichment: None,
            client_event_id: false,
            ..event
        };
        assert_eq!(row.into_event(true).unwrap(), expected);
    }

    #[test]
    fn a_resend_has_another_fingerprint() {
        let event = sample_event("same-id");
        let mut resend = event.clone();
        resend.correlation_id.push_str("-again");
        assert_eq!(fingerprint(&event).unwrap(), fingerprint(&event).unwrap());
        assert_ne!(fingerprint(&event).unwrap(), fingerprint(&resend).unwrap());
    }
}

//! Segment's wire format in the native event's terms: one Segment message (the tracking
//! API's, analytics.js's, a server library's) in, an `EventDraft` out, with the same field
//! rules as the native API. Pure: the receive time is handed in, so the mapping and the
//! clock-skew rule are tested here without a server.
//!
//! - `messageId` is the event id, so a library's retry is stored once.
//! - `track` is stored under its `event` name; the other calls under fixed types
//!   (`page_view`, `screen_view`, `identify`, `group`, `alias`).
//! - `properties` is the call's payload: `properties` (track, page, screen) or `traits`
//!   (identify, group), plus the call's own top-level fields: page and screen `name` and
//!   `category` (unless the properties hold them already), group `groupId`, alias
//!   `previousId`. `context` is kept as sent.
//! - The event time is the client's `timestamp` (or `originalTimestamp`), corrected with
//!   Segment's formula `receivedAt − (sentAt − timestamp)` when the sender's clock, as its
//!   `sentAt` shows, is off from ours by more than `TRUSTED_CLOCK_SKEW`.

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use serde_json::{Map, Value};

use crate::error::FieldError;
use crate::ingest::format::fields::Fields;
use crate::ingest::format::{Arrival, EventDraft, EventFields, parse_sent_at};
use crate::model::JsonObject;

/// How far a sender's clock (its `sentAt` against our receive time) may be off and still
/// count as right: within it, timestamps are kept exactly as sent (a synced server's
/// historical import stays exact); beyond it, they are corrected.
pub const TRUSTED_CLOCK_SKEW: TimeDelta = TimeDelta::seconds(2);

/// The event types the calls other than `track` are stored under (a page view is what
/// sessions count pages by).
pub const PAGE_EVENT_TYPE: &str = crate::people::sessions::PAGE_VIEW_EVENT_TYPE;
pub const SCREEN_EVENT_TYPE: &str = "screen_view";
pub const IDENTIFY_EVENT_TYPE: &str = "identify";
pub const GROUP_EVENT_TYPE: &str = "group";
/// People join an alias's `previousId` to its user (`people::joins_of`).
pub const ALIAS_EVENT_TYPE: &str = crate::people::ALIAS_EVENT_TYPE;

/// A Segment call, as named by its message's `type` or by its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentCall {
    Track,
    Page,
    Screen,
    Identify,
    Group,
    Alias,
}

impl SegmentCall {
    pub const ALL: [SegmentCall; 6] = [
        SegmentCall::Track,
        SegmentCall::Page,
        SegmentCall::Screen,
        SegmentCall::Identify,
        SegmentCall::Group,
        SegmentCall::Alias,
    ];

    /// The call's name: its message `type` and its endpoint (`/v1/track`); analytics.js
    /// posts to the first letter (`/v1/t`).
    pub fn name(self) -> &'static str {
        match self {
            SegmentCall::Track => "track",
            SegmentCall::Page => "page",
            SegmentCall::Screen => "screen",
            SegmentCall::Identify => "identify",
            SegmentCall::Group => "group",
            SegmentCall::Alias => "alias",
        }
    }

    pub fn from_name(name: &str) -> Option<SegmentCall> {
        SegmentCall::ALL
            .into_iter()
            .find(|call| call.name() == name)
    }

    /// The fixed event type of every call but `track` (stored under its `event` name).
    pub fn event_type(self) -> Option<&'static str> {
        match self {
            SegmentCall::Track => None,
            SegmentCall::Page => Some(PAGE_EVENT_TYPE),
            SegmentCall::Screen => Some(SCREEN_EVENT_TYPE),
            SegmentCall::Identify => Some(IDENTIFY_EVENT_TYPE),
            SegmentCall::Group => Some(GROUP_EVENT_TYPE),
            SegmentCall::Alias => Some(ALIAS_EVENT_TYPE),
        }
    }
}

/// Translates one message. `endpoint` is the call an endpoint stands for (`/v1/track`);
/// `None` in a batch, where each message names its `type`.
pub fn translate(
    fields: &EventFields<'_>,
    endpoint: Option<SegmentCall>,
    arrival: Arrival,
) -> Result<EventDraft, Vec<FieldError>> {
    let mut reader = Fields::new(fields);
    let call = endpoint.or_else(|| call_type(&mut reader));
    let event_type = match call {
        Some(SegmentCall::Track) => reader.event_type(&["event"]),
        Some(call) => call.event_type().map(str::to_string),
        None => None,
    };
    let event_id = reader.identifier(&["messageId"]);
    let user_id = reader.identifier(&["userId"]);
    let anonymous_id = reader.identifier(&["anonymousId"]);
    let subsystem = reader.identifier(&["subsystem"]);
    let timestamp = event_time(&mut reader, arrival);
    let properties = call.map_or_else(JsonObject::empty, |call| payload(&mut reader, call));
    let context = reader.object(&["context"]);
    reader.require_identity(&user_id, &anonymous_id);
    if call == Some(SegmentCall::Alias) && user_id.is_none() && reader.errors.is_empty() {
        reader.fail(
            "userId",
            "is required for an alias (the id the user is known by now)",
        );
    }
    match event_type {
        Some(event_type) if reader.errors.is_empty() => Ok(EventDraft {
            event_id,
            event_type,
            timestamp,
            user_id,
            anonymous_id,
            subsystem,
            properties,
            context,
        }),
        _ => Err(reader.errors),
    }
}

fn call_type(reader: &mut Fields<'_, '_>) -> Option<SegmentCall> {
    let Some((name, value)) = reader.value(&["type"]) else {
        if reader.errors.is_empty() {
            reader.fail("type", "is required in a batch");
        }
        return None;
    };
    let call = value.as_str().and_then(SegmentCall::from_name);
    if call.is_none() {
        let names: Vec<&str> = SegmentCall::ALL.iter().map(|call| call.name()).collect();
        reader.fail(name, format!("must be one of {}", names.join(", ")));
    }
    call
}

/// The client's time for the event, corrected for its clock when that is off (see
/// `corrected`). `None` when the message has none: the pipeline takes the receive time.
fn event_time(reader: &mut Fields<'_, '_>, arrival: Arrival) -> Option<DateTime<Utc>> {
    let (name, claimed) = reader.instant(&["timestamp", "originalTimestamp"])?;
    let sent_at = sent_at(reader).or(arrival.batch_sent_at);
    match corrected(claimed, sent_at, arrival.received_at) {
        Some(time) => reader.not_too_early(name, time),
        None => {
            reader.fail(name, "is too far from sentAt to be corrected");
            None
        }
    }
}

/// A message's own `sentAt` (analytics.js sets one per message). One that is no RFC 3339
/// time is ignored: it only steers the correction, and the message is still good.
fn sent_at(reader: &Fields<'_, '_>) -> Option<DateTime<Utc>> {
    let (_, raw) = reader.find(&["sentAt"])?;
    parse_sent_at(raw.get())
}

/// Segment's clock-skew correction, `receivedAt − (sentAt − timestamp)`, applied when the
/// sender's clock is off from ours by more than `TRUSTED_CLOCK_SKEW`; otherwise (or with
/// no `sentAt`) the client's time is kept as sent. `None` if the result is no time an
/// RFC 3339 timestamp can state (past the year 9999: clocks that far apart are garbage).
pub fn corrected(
    claimed: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let Some(sent_at) = sent_at else {
        return Some(claimed);
    };
    let sender_clock_offset = sent_at.signed_duration_since(received_at);
    if sender_clock_offset.abs() <= TRUSTED_CLOCK_SKEW {
        return Some(claimed);
    }
    let waited_before_sending = sent_at.signed_duration_since(claimed);
    received_at
        .checked_sub_signed(waited_before_sending)
        .filter(|time| time.year() <= MAX_RFC3339_YEAR)
}

const MAX_RFC3339_YEAR: i32 = 9999;

/// The stored `properties`: the call's payload and its own top-level fields.
fn payload(reader: &mut Fields<'_, '_>, call: SegmentCall) -> JsonObject {
    let (payload, extras) = match call {
        SegmentCall::Track => (reader.object(&["properties"]), Vec::new()),
        SegmentCall::Page | SegmentCall::Screen => {
            let properties = reader.object(&["properties"]);
            let names = ["name", "category"].into_iter();
            let extras = names.filter_map(|name| text_field(reader, name)).collect();
            (properties, extras)
        }
        SegmentCall::Identify => (reader.object(&["traits"]), Vec::new()),
        SegmentCall::Group => {
            let traits = reader.object(&["traits"]);
            (traits, required_id(reader, "groupId").into_iter().collect())
        }
        SegmentCall::Alias => {
            let previous = required_id(reader, "previousId");
            (JsonObject::empty(), previous.into_iter().collect())
        }
    };
    if extras.is_empty() {
        return payload;
    }
    let mut merged: Map<String, Value> =
        serde_json::from_str(payload.as_str()).expect("a checked JSON object parses");
    for (name, value) in extras {
        match call {
            // The page's name in `properties.name` is Segment's own convention: it wins.
            SegmentCall::Page | SegmentCall::Screen => {
                merged.entry(name.to_string()).or_insert(value);
            }
            _ => {
                merged.insert(name.to_string(), value);
            }
        }
    }
    JsonObject::from_map(&merged)
}

fn text_field(reader: &mut Fields<'_, '_>, name: &'static str) -> Option<(&'static str, Value)> {
    let (name, value) = reader.value(&[name])?;
    if !value.is_string() {
        reader.fail(name, "must be a string");
        return None;
    }
    Some((name, value))
}

fn required_id(reader: &mut Fields<'_, '_>, name: &'static str) -> Option<(&'static str, Value)> {
    if reader.find(&[name]).is_none() {
        reader.fail(name, "is required");
        return None;
    }
    reader
        .identifier(&[name])
        .map(|id| (name, Value::String(id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::format::event_fields;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn arrival() -> Arrival {
        Arrival {
            received_at: at("2026-11-21T10:30:00Z"),
            batch_sent_at: None,
        }
    }

    fn translated(call: Option<SegmentCall>, message: Value) -> Result<EventDraft, Vec<String>> {
        let json = serde_json::to_vec(&message).unwrap();
        translate(&event_fields(&json).unwrap(), call, arrival())
            .map_err(|errors| errors.into_iter().map(|error| error.field).collect())
    }

    fn properties_of(draft: &EventDraft) -> Value {
        serde_json::from_str(draft.properties.as_str()).unwrap()
    }

    /// Found by the fuzzer: a timestamp and a `sentAt` millennia apart would correct past
    /// the year 9999, which no RFC 3339 timestamp can state.
    #[test]
    fn a_correction_past_the_year_9999_is_refused() {
        let claimed = at("9738-01-01T00:00:05Z");
        let sent_at = at("0985-01-01T00:00:06Z");
        assert_eq!(
            corrected(claimed, Some(sent_at), arrival().received_at),
            None
        );
        assert_eq!(
            translated(
                Some(SegmentCall::Track),
                json!({"event": "e", "userId": "u", "timestamp": "9738-01-01T00:00:05Z",
                       "sentAt": "0985-01-01T00:00:06Z"}),
            )
            .unwrap_err(),
            ["timestamp"]
        );
    }

    #[test]
    fn a_track_is_stored_under_its_event_name_with_its_message_id() {
        let draft = translated(
            None,
            json!({"type": "track", "event": "Order Completed", "messageId": "m-1",
                   "anonymousId": "a-1", "properties": {"total": 30},
                   "context": {"ip": "192.0.2.1", "library": {"name": "analytics-python"}}}),
        )
        .unwrap();
        assert_eq!(draft.event_type, "Order Completed");
        assert_eq!(draft.event_id.as_deref(), Some("m-1"));
        assert_eq!(draft.anonymous_id.as_deref(), Some("a-1"));
        assert_eq!(properties_of(&draft), json!({"total": 30}));
        assert_eq!(
            draft.context.as_str(),
            r#"{"ip":"192.0.2.1","library":{"name":"analytics-python"}}"#
        );
    }

    #[test]
    fn each_call_is_stored_under_the_type_its_endpoint_names() {
        let expected = [
            (SegmentCall::Page, "page_view"),
            (SegmentCall::Screen, "screen_view"),
            (SegmentCall::Identify, "identify"),
            (SegmentCall::Group, "group"),
            (SegmentCall::Alias, "alias"),
        ];
        for (call, event_type) in expected {
            let message =
                json!({"type": "track", "userId": "u", "groupId": "g", "previousId": "p"});
            let draft = translated(Some(call), message).unwrap();
            assert_eq!(draft.event_type, event_type, "{call:?}: the endpoint wins");
        }
    }

    #[test]
    fn traits_and_the_calls_own_fields_become_properties() {
        let identify = translated(
            None,
            json!({"type": "identify", "userId": "u", "anonymousId": "a", "traits": {"plan": "pro"}}),
        )
        .unwrap();
        assert_eq!(properties_of(&identify), json!({"plan": "pro"}));
        let group = translated(
            None,
            json!({"type": "group", "userId": "u", "groupId": 42, "traits": {"name": "Acme"}}),
        )
        .unwrap();
        assert_eq!(
            properties_of(&group),
            json!({"name": "Acme", "groupId": "42"})
        );
        let alias = translated(
            None,
            json!({"type": "alias", "userId": "u", "previousId": "a"}),
        )
        .unwrap();
        assert_eq!(properties_of(&alias), json!({"previousId": "a"}));
        let page = translated(
            None,
            json!({"type": "page", "userId": "u", "name": "Pricing", "category": "Docs",
                   "properties": {"name": "Pricing page", "path": "/pricing"}}),
        )
        .unwrap();
        assert_eq!(
            properties_of(&page),
            json!({"name": "Pricing page", "category": "Docs", "path": "/pricing"})
        );
    }

    #[test]
    fn each_call_names_its_missing_fields() {
        let cases = [
            (json!({"type": "track", "userId": "u"}), vec!["event"]),
            (json!({"type": "group", "userId": "u"}), vec!["groupId"]),
            (json!({"type": "alias", "userId": "u"}), vec!["previousId"]),
            (
                json!({"type": "alias", "anonymousId": "a", "previousId": "p"}),
                vec!["userId"],
            ),
            (json!({"type": "page"}), vec!["userId"]),
            (json!({"userId": "u"}), vec!["type"]),
            (json!({"type": "click", "userId": "u"}), vec!["type"]),
            (
                json!({"type": "page", "userId": "u", "name": 5}),
                vec!["name"],
            ),
        ];
        for (message, fields) in cases {
            assert_eq!(
                translated(None, message.clone()).unwrap_err(),
                fields,
                "{message}"
            );
        }
    }

    #[test]
    fn timestamps_from_a_sender_with_our_clock_are_kept_as_sent() {
        let received = at("2026-11-21T10:30:00Z");
        let historical = at("2025-01-01T00:00:00Z");
        let sent = received - TimeDelta::milliseconds(1500);
        assert_eq!(
            corrected(historical, Some(sent), received),
            Some(historical)
        );
        assert_eq!(corrected(historical, None, received), Some(historical));
    }

    #[test]
    fn a_senders_wrong_clock_is_corrected_with_segments_formula() {
        let received = at("2026-11-21T10:30:00Z");
        // A phone one hour behind, which queued the event 10 s before sending it.
        let claimed = at("2026-11-21T09:29:50Z");
        let sent = at("2026-11-21T09:30:00Z");
        assert_eq!(
            corrected(claimed, Some(sent), received),
            Some(at("2026-11-21T10:29:50Z"))
        );
    }

    #[test]
    fn a_device_clock_in_1970_is_corrected_rather_than_refused() {
        let json = br#"{"type": "track", "event": "Opened", "userId": "u",
            "timestamp": "1970-01-01T00:00:05Z", "sentAt": "1970-01-01T00:00:10Z"}"#;
        let draft = translate(&event_fields(json).unwrap(), None, arrival()).unwrap();
        assert_eq!(draft.timestamp, Some(at("2026-11-21T10:29:55Z")));
        let without_sent_at = br#"{"type": "track", "event": "Opened", "userId": "u",
            "timestamp": "1970-01-01T00:00:05Z"}"#;
        let errors = translate(&event_fields(without_sent_at).unwrap(), None, arrival());
        assert_eq!(errors.unwrap_err()[0].field, "timestamp");
    }

    #[test]
    fn the_batchs_sent_at_applies_unless_the_message_has_its_own() {
        let json = br#"{"type": "track", "event": "x", "userId": "u",
            "originalTimestamp": "2026-11-21T11:29:59Z"}"#;
        let fields = event_fields(json).unwrap();
        let skewed = Arrival {
            batch_sent_at: Some(at("2026-11-21T11:30:00Z")),
            ..arrival()
        };
        let draft = translate(&fields, None, skewed).unwrap();
        assert_eq!(draft.timestamp, Some(at("2026-11-21T10:29:59Z")));
        let own = br#"{"type": "track", "event": "x", "userId": "u",
            "timestamp": "2026-11-21T11:29:59Z", "sentAt": "2026-11-21T10:30:00Z"}"#;
        let draft = translate(&event_fields(own).unwrap(), None, skewed).unwrap();
        assert_eq!(draft.timestamp, Some(at("2026-11-21T11:29:59Z")));
    }

    #[test]
    fn a_sent_at_that_is_no_time_is_ignored() {
        assert_eq!(parse_sent_at(r#""yesterday""#), None);
        assert_eq!(parse_sent_at("12"), None);
        assert_eq!(
            parse_sent_at(r#""2026-11-21T10:30:00.123+01:00""#),
            Some(at("2026-11-21T09:30:00.123Z"))
        );
    }
}

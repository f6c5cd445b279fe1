//! Cursor paging of the embedded store, as properties: for random events (many sharing a
//! timestamp, client and server ids, three subsystems of two partners), random time
//! ranges, filters and page sizes, following `next_cursor` from the first page visits
//! every matching event of the scope and range exactly once, newest first, and nothing
//! else, for both scopes.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use proptest::collection::vec;
use proptest::strategy::{Just, Strategy};
use proptest::test_runner::Config as ProptestConfig;
use proptest::{prop_assert, prop_assert_eq, prop_oneof, proptest};
use uuid::Uuid;
use volcanion::model::{Event, JsonObject};
use volcanion::store::embedded::EmbeddedStore;
use volcanion::store::{EventFilter, EventQuery, EventScope, EventStore};

/// Distinct event times: few, so that many events share one.
const TIME_SLOTS: u32 = 8;
const EVENT_TYPES: [&str; 3] = ["page", "click", "Order Completed"];
const USERS: [&str; 3] = ["u1", "u2", "u3"];

/// Two partners; the first has two subsystems, the second one (its events must never
/// show up in the first's pages, nor one subsystem's in the other's).
struct Tenants {
    partner: Uuid,
    subsystems: [Uuid; 2],
    other_partner: Uuid,
    other_subsystem: Uuid,
}

impl Tenants {
    fn new() -> Tenants {
        Tenants {
            partner: Uuid::now_v7(),
            subsystems: [Uuid::now_v7(), Uuid::now_v7()],
            other_partner: Uuid::now_v7(),
            other_subsystem: Uuid::now_v7(),
        }
    }

    /// The partner and subsystem of `owner`: 0 and 1 the first partner's, 2 the other's.
    fn owner(&self, owner: usize) -> (Uuid, Uuid) {
        match owner {
            0 | 1 => (self.partner, self.subsystems[owner]),
            _ => (self.other_partner, self.other_subsystem),
        }
    }
}

#[derive(Debug, Clone)]
struct EventSpec {
    time_slot: u32,
    owner: usize,
    event_type: usize,
    user: Option<usize>,
    is_valid: bool,
    client_id: bool,
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    (
        0..TIME_SLOTS,
        0..3usize,
        0..EVENT_TYPES.len(),
        proptest::option::of(0..USERS.len()),
        proptest::bool::ANY,
        proptest::bool::ANY,
    )
        .prop_map(
            |(time_slot, owner, event_type, user, is_valid, client_id)| EventSpec {
                time_slot,
                owner,
                event_type,
                user,
                is_valid,
                client_id,
            },
        )
}

#[derive(Debug, Clone)]
struct QuerySpec {
    /// The first partner, or one of its subsystems.
    subsystem: Option<usize>,
    from_slot: u32,
    slots: u32,
    /// Added to `from` and `to`: bounds need not fall on an event's time, nor on a whole
    /// microsecond.
    offset_nanos: i64,
    event_type: Option<usize>,
    user: Option<usize>,
    is_valid: Option<bool>,
    limit: usize,
    with_payload: bool,
}

fn query_spec() -> impl Strategy<Value = QuerySpec> {
    (
        proptest::option::of(0..2usize),
        0..TIME_SLOTS,
        1..=TIME_SLOTS + 1,
        prop_oneof![Just(0i64), -1_500..1_500i64, -999_999..1_000_000i64],
        proptest::option::of(0..EVENT_TYPES.len()),
        proptest::option::of(0..USERS.len()),
        proptest::option::of(proptest::bool::ANY),
        1..8usize,
        proptest::bool::ANY,
    )
        .prop_map(
            |(
                subsystem,
                from_slot,
                slots,
                offset_nanos,
                event_type,
                user,
                is_valid,
                limit,
                with_payload,
            )| {
                QuerySpec {
                    subsystem,
                    from_slot,
                    slots,
                    offset_nanos,
                    event_type,
                    user,
                    is_valid,
                    limit,
                    with_payload,
                }
            },
        )
}

fn slot_time(slot: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("in range") + Duration::seconds(slot.into())
}

fn event_of(tenants: &Tenants, index: usize, spec: &EventSpec) -> Event {
    let (partner_id, subsystem_id) = tenants.owner(spec.owner);
    let timestamp = slot_time(spec.time_slot);
    Event {
        event_id: match spec.client_id {
            true => format!("client-{index}"),
            false => Uuid::now_v7().to_string(),
        },
        partner_id,
        subsystem_id,
        event_type: EVENT_TYPES[spec.event_type].to_string(),
        timestamp,
        received_at: timestamp,
        user_id: spec.user.map(|user| USERS[user].to_string()),
        anonymous_id: Some(format!("anon-{index}")),
        properties: JsonObject::parse(format!(r#"{{"index": {index}}}"#)).expect("an object"),
        context: JsonObject::empty(),
        is_valid: spec.is_valid,
        validation_errors: Vec::new(),
        correlation_id: format!("correlation-{index}"),
        enrichment: None,
        client_event_id: spec.client_id,
    }
}

fn query_of(tenants: &Tenants, spec: &QuerySpec) -> EventQuery {
    let offset = Duration::nanoseconds(spec.offset_nanos);
    EventQuery {
        scope: match spec.subsystem {
            Some(subsystem) => EventScope::Subsystem(tenants.subsystems[subsystem]),
            None => EventScope::Partner(tenants.partner),
        },
        from: slot_time(spec.from_slot) + offset,
        to: slot_time(spec.from_slot + spec.slots) + offset,
        filter: EventFilter {
            event_type: spec.event_type.map(|kind| EVENT_TYPES[kind].to_string()),
            user_id: spec.user.map(|user| USERS[user].to_string()),
            is_valid: spec.is_valid,
        },
        limit: spec.limit,
        cursor: None,
        with_payload: spec.with_payload,
    }
}

fn in_scope(scope: EventScope, event: &Event) -> bool {
    match scope {
        EventScope::Partner(partner) => event.partner_id == partner,
        EventScope::Subsystem(subsystem) => event.subsystem_id == subsystem,
    }
}

/// Every page of `query`, following cursors; at most one page per stored event (plus
/// the last), so a cursor that never ends fails instead of hanging.
async fn all_pages(store: &EmbeddedStore, query: &EventQuery, stored: usize) -> Vec<Vec<Event>> {
    let mut pages = Vec::new();
    let mut query = query.clone();
    loop {
        assert!(pages.len() <= stored + 1, "paging does not end");
        let page = store.query_events(&query).await.expect("a page");
        pages.push(page.items);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return pages,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn paging_visits_every_matching_event_once_newest_first(
        specs in vec(event_spec(), 0..60),
        queries in vec(query_spec(), 1..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let data_dir = tempfile::TempDir::new().expect("a temp dir");
        let store = EmbeddedStore::open(data_dir.path()).expect("the store opens");
        let tenants = Tenants::new();
        let events: Vec<Event> = specs
            .iter()
            .enumerate()
            .map(|(index, spec)| event_of(&tenants, index, spec))
            .collect();
        for batch in events.chunks(7) {
            runtime.block_on(store.write_events(batch)).expect("stored");
        }
        for spec in &queries {
            let query = query_of(&tenants, spec);
            let pages = runtime.block_on(all_pages(&store, &query, events.len()));
            let visited: Vec<&Event> = pages.iter().flatten().collect();
            for page in &pages {
                prop_assert!(page.len() <= query.limit, "a page holds at most its limit");
            }
            for event in &visited {
                prop_assert!(in_scope(query.scope, event), "{} is outside the scope", event.event_id);
                prop_assert!(
                    query.from <= event.timestamp && event.timestamp < query.to,
                    "{} at {} is outside {}..{}",
                    event.event_id, event.timestamp, query.from, query.to
                );
                prop_assert!(query.filter.matches(event));
                prop_assert_eq!(event.properties.as_str().len() > 2, query.with_payload);
            }
            for pair in visited.windows(2) {
                prop_assert!(pair[0].timestamp >= pair[1].timestamp, "newest first");
            }
            let visited_ids: Vec<&str> = visited.iter().map(|event| event.event_id.as_str()).collect();
            let distinct: HashSet<&str> = visited_ids.iter().copied().collect();
            prop_assert_eq!(distinct.len(), visited_ids.len(), "an event is visited twice");
            let expected: HashSet<&str> = events
                .iter()
                .filter(|event| in_scope(query.scope, event))
                .filter(|event| query.from <= event.timestamp && event.timestamp < query.to)
                .filter(|event| query.filter.matches(event))
                .map(|event| event.event_id.as_str())
                .collect();
            prop_assert_eq!(distinct, expected);
        }
    }
}

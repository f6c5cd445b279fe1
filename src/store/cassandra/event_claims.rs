//! Claiming a client-chosen event id, so the id is stored once across writers and
//! instances. The claim (`event_ids_by_partner`, a lightweight transaction) records where
//! the first write of the id puts its rows and a fingerprint of that write.
//!
//! A claim is never taken as proof that the rows exist: a process can die (kill -9, OOM,
//! a drain cut short) between its claim and its rows, and another instance can be asked
//! for the same id before the first one's rows land. So a write that finds someone
//! else's claim looks at the claimed key in both events tables:
//! - both rows there: a duplicate, nothing written;
//! - only the by-partner row: the first write was cut between its two tables; its row is
//!   copied to the by-subsystem table (first content wins), still a duplicate;
//! - no by-partner row: that write never landed (or has not yet): this write stores its
//!   event at the claimed key. Both writers then write the same primary key, so the id is
//!   stored once whichever lands last, and the client's resend is only acknowledged once
//!   its rows exist.
//!
//! Server-made ids (UUIDv7) skip the claim: nothing else can make them, and the LWT is the
//! costliest step of the write path. A client id that looks like one (a UUIDv7) could
//! name a server-made event's key, so before its rows go out the key is checked for a row
//! written by another request: client ids never replace server-made events.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::rows::{EventRow, Placement, fingerprint, millisecond_time};
use super::{CassandraStore, events_write::ttl_seconds};
use crate::model::Event;
use crate::store::StoreError;

/// What to write for one event, with its rows' TTL.
pub(super) enum Claim {
    /// The event's rows, into both tables.
    Store(Box<EventRow>, i32),
    /// An earlier write's by-partner row, to be copied into the by-subsystem table it is
    /// missing from. The event itself is a duplicate.
    CompleteSubsystemRow(Box<EventRow>, i32),
    Duplicate,
}

pub(super) async fn claim(store: &CassandraStore, event: &Event) -> Result<Claim, StoreError> {
    let ttl_seconds = ttl_seconds(store, event.partner_id).await?;
    let placement = Placement::of(event, store.buckets);
    if !event.client_event_id {
        // A server-made id is unique by construction: no other write can claim it.
        return Ok(Claim::Store(
            Box::new(EventRow::from_event(event, placement)?),
            ttl_seconds,
        ));
    }
    let fingerprint = fingerprint(event)?;
    let outcome = store
        .transaction(
            &store.statements.claim_event_id,
            (
                event.partner_id,
                event.event_id.as_str(),
                placement.day,
                placement.event_time,
                placement.bucket,
                fingerprint.as_slice(),
                ttl_seconds,
            ),
        )
        .await?;
    let own_claim = outcome.applied || outcome.existing_blob("fingerprint") == Some(&fingerprint);
    if own_claim {
        if may_name_a_server_made_event(&event.event_id)
            && stored_by_another_request(store, event, placement).await?
        {
            return Ok(Claim::Duplicate);
        }
        return Ok(Claim::Store(
            Box::new(EventRow::from_event(event, placement)?),
            ttl_seconds,
        ));
    }
    let claimed_time = outcome.existing_timestamp("event_time").ok_or_else(|| {
        StoreError::Corrupt(format!("a claim without a time: {}", event.event_id))
    })?;
    let claimed = Placement {
        day: claimed_time.date_naive(),
        event_time: claimed_time,
        bucket: outcome.existing_int("bucket").unwrap_or(placement.bucket),
    };
    let Some(partner_row) =
        partner_row_at(store, event.partner_id, &event.event_id, claimed).await?
    else {
        let event = at_claimed_time(event, claimed_time);
        return Ok(Claim::Store(
            Box::new(EventRow::from_event(&event, claimed)?),
            ttl_seconds,
        ));
    };
    if subsystem_row_exists(store, &partner_row).await? {
        return Ok(Claim::Duplicate);
    }
    Ok(Claim::CompleteSubsystemRow(
        Box::new(partner_row),
        ttl_seconds,
    ))
}

/// Server-made ids are UUIDv7: only a client id of that form can name one's key.
fn may_name_a_server_made_event(event_id: &str) -> bool {
    Uuid::try_parse(event_id).is_ok_and(|id| id.get_version_num() == 7)
}

/// Whether the event's own key holds a row that another request wrote (a retry of this
/// very write carries its receive time and correlation id).
async fn stored_by_another_request(
    store: &CassandraStore,
    event: &Event,
    placement: Placement,
) -> Result<bool, StoreError> {
    let Some(row) = partner_row_at(store, event.partner_id, &event.event_id, placement).await?
    else {
        return Ok(false);
    };
    let same_request = row.correlation_id == event.correlation_id
        && row.received_at == millisecond_time(event.received_at);
    Ok(!same_request)
}

async fn partner_row_at(
    store: &CassandraStore,
    partner_id: Uuid,
    event_id: &str,
    placement: Placement,
) -> Result<Option<EventRow>, StoreError> {
    let rows: Vec<EventRow> = store
        .select(
            &store.statements.select_event_by_partner_key,
            (
                partner_id,
                placement.day,
                placement.bucket,
                placement.event_time,
                event_id,
            ),
        )
        .await?;
    Ok(rows.into_iter().next())
}

async fn subsystem_row_exists(store: &CassandraStore, row: &EventRow) -> Result<bool, StoreError> {
    let rows: Vec<(String,)> = store
        .select(
            &store.statements.select_event_by_subsystem_key,
            (
                row.subsystem_id,
                row.day,
                row.bucket,
                row.event_time,
                row.event_id.as_str(),
            ),
        )
        .await?;
    Ok(!rows.is_empty())
}

/// The event as it goes to an earlier claim's key: at the claimed time (to the
/// millisecond a claim keeps), unless it already is.
fn at_claimed_time(event: &Event, claimed_time: DateTime<Utc>) -> Cow<'_, Event> {
    if millisecond_time(event.timestamp) == claimed_time {
        return Cow::Borrowed(event);
    }
    Cow::Owned(Event {
        timestamp: claimed_time,
        ..event.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::sample_event;

    #[test]
    fn only_uuid_v7_client_ids_can_name_a_server_made_event() {
        assert!(may_name_a_server_made_event(&Uuid::now_v7().to_string()));
        assert!(!may_name_a_server_made_event(&Uuid::new_v4().to_string()));
        assert!(!may_name_a_server_made_event("order-42"));
    }

    #[test]
    fn a_resend_goes_to_the_claimed_time_and_keeps_its_own_when_equal() {
        let event = sample_event("resent");
        let same = at_claimed_time(&event, millisecond_time(event.timestamp));
        assert!(matches!(same, Cow::Borrowed(_)));
        let earlier = millisecond_time(event.timestamp) - chrono::Duration::seconds(5);
        let moved = at_claimed_time(&event, earlier);
        assert_eq!(moved.timestamp, earlier);
        assert_eq!(moved.event_id, event.event_id);
        assert_eq!(
            Placement::of(&moved, 4).event_time,
            earlier,
            "the rows go to the claimed key"
        );
    }
}

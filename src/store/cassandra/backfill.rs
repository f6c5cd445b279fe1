//! Enrichment for events stored before it existed (`enrichment` null, `cql/007`): each such
//! event of a partner's range is read with its payload, enriched, and its two rows
//! (by partner and by subsystem) written again whole with the enrichment, with what is
//! left of the row's TTL so they still expire with the event. Rewriting whole rows rather
//! than setting the one column keeps a missing row from coming back as a row of nulls.
//! Rows that already have an enrichment are left as they are, so running it again does
//! nothing. The rollups of the range are stale afterwards: `rollups rebuild` runs it before
//! it recounts.

use futures::{StreamExt, TryStreamExt};
use uuid::Uuid;

use super::CassandraStore;
use super::rows::{EventRow, Placement};
use crate::model::Event;
use crate::rollups::Hour;
use crate::store::{EnrichStored, EventQuery, EventScope, EventStore, StoreError};

/// Events read per page.
const PAGE: usize = 1_000;

pub(super) async fn backfill_enrichment(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
    enrich: &EnrichStored<'_>,
) -> Result<u64, StoreError> {
    let mut query = EventQuery {
        scope: EventScope::Partner(partner),
        from: from.start(),
        to: to.start(),
        filter: Default::default(),
        limit: PAGE,
        cursor: None,
        with_payload: true,
    };
    let mut enriched = 0;
    loop {
        let page = store.query_events(&query).await?;
        // Rows keep their keys when rewritten, so the cursor still resumes after them.
        let rewrites: Vec<_> = page
            .items
            .into_iter()
            .filter(|event| event.enrichment.is_none())
            .map(|mut event| {
                event.enrichment = Some(enrich(&event));
                rewrite(store, event)
            })
            .collect();
        let rewritten: Vec<bool> = futures::stream::iter(rewrites)
            .buffer_unordered(store.write_concurrency)
            .try_collect()
            .await?;
        enriched += rewritten.into_iter().filter(|done| *done).count() as u64;
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return Ok(enriched),
        }
    }
}

/// Writes both rows of `event` again; false when its row has gone meanwhile (expired).
async fn rewrite(store: &CassandraStore, event: Event) -> Result<bool, StoreError> {
    let placement = Placement::of(&event, store.buckets);
    let key = (
        event.partner_id,
        placement.day,
        placement.bucket,
        placement.event_time,
        event.event_id.as_str(),
    );
    let ttl: Vec<(Option<i32>,)> = store
        .select(&store.breakdown_statements.select_event_ttl, key)
        .await?;
    let Some((ttl,)) = ttl.into_iter().next() else {
        return Ok(false);
    };
    // No TTL reads as null; `USING TTL 0` writes none.
    let ttl = ttl.unwrap_or(0);
    let row = EventRow::from_event(&event, placement)?;
    let statements = &store.statements;
    futures::try_join!(
        store.execute(&statements.insert_event_by_partner, Rewrite::of(&row, ttl)),
        store.execute(
            &statements.insert_event_by_subsystem,
            Rewrite::of(&row, ttl)
        ),
    )?;
    Ok(true)
}

/// Bind values of an events insert: the row, then `USING TTL ?`.
#[derive(scylla::SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct Rewrite {
    #[scylla(flatten)]
    row: EventRow,
    ttl: i32,
}

impl Rewrite {
    fn of(row: &EventRow, ttl: i32) -> Rewrite {
        Rewrite {
            row: row.clone(),
            ttl,
        }
    }
}

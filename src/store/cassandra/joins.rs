//! People's joins on Cassandra (`cql/009_people.cql`): written by the ingest writers with
//! `IF NOT EXISTS`, so the first pairing of an anonymous id wins across instances; a later
//! different one is recorded apart. Browsers send their anonymous id with every event of a
//! signed-in user, so the joins this process has seen are remembered and not written
//! again (a lightweight transaction is four round trips).
//!
//! The hours holding an anonymous id's events without a user id are recorded too
//! (`cql/010_people_postings.cql`): a join first recorded after their fold touches them,
//! so they are folded again with the anonymous id's postings under the user.

use std::collections::{BTreeMap, HashMap};

use futures::{StreamExt, TryStreamExt};

use chrono::Utc;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::events_write::ttl_seconds;
use super::rollups::{all, touch};
use super::rows::bucket_of;
use super::statements::prepare_statement;
use super::{CassandraStore, corrupt};
use crate::model::Event;
use crate::people::{Joins, joins_of};
use crate::rollups::Hour;
use crate::store::StoreError;

/// Partitions a partner's joins spread over.
pub(super) const JOIN_BUCKETS: u32 = 16;
/// Joins remembered by this process: (partner, anonymous id) → user.
const REMEMBERED_JOINS: u64 = 200_000;
/// Anonymous hours this process has recorded, not written again.
const REMEMBERED_HOURS: u64 = 200_000;
const PAGE_SIZE: i32 = 5_000;
/// Anonymous ids looked up per query (`IN`, within one partition).
const LOOKUP_CHUNK: usize = 100;

pub struct JoinStatements {
    insert_join: PreparedStatement,
    insert_conflict: PreparedStatement,
    select_joins_among: PreparedStatement,
    insert_user_id: PreparedStatement,
    select_user_ids: PreparedStatement,
    insert_anonymous_hour: PreparedStatement,
    select_anonymous_hours: PreparedStatement,
    /// Joins already in the table, as this process learnt them.
    known: moka::sync::Cache<(Uuid, String), String>,
    /// Anonymous hours already in the table.
    hours_known: moka::sync::Cache<(Uuid, String, Hour), ()>,
}

impl JoinStatements {
    /// Forgets what this process remembers of the join of `anonymous` (it was erased).
    pub(super) fn forget_known(&self, partner: Uuid, anonymous: &str) {
        self.known.invalidate(&(partner, anonymous.to_string()));
    }

    /// Forgets every join and anonymous hour this process remembers (a partner was purged).
    pub(super) fn forget_all_known(&self) {
        self.known.invalidate_all();
        self.hours_known.invalidate_all();
    }

    pub async fn prepare(session: &Session, keyspace: &str) -> Result<JoinStatements, StoreError> {
        let ks = keyspace;
        let prepare = |cql: String, idempotent: bool| async move {
            let mut statement = prepare_statement(session, cql, idempotent).await?;
            statement.set_page_size(PAGE_SIZE);
            Ok::<_, StoreError>(statement)
        };
        Ok(JoinStatements {
            insert_join: prepare(format!(
                "INSERT INTO {ks}.people_joins (partner_id, bucket, anonymous_id, user_id, joined_at) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS"
            ), false)
            .await?,
            insert_conflict: prepare(format!(
                "INSERT INTO {ks}.people_join_conflicts (partner_id, anonymous_id, user_id, seen_at) VALUES (?, ?, ?, ?)"
            ), true)
            .await?,
            select_joins_among: prepare(format!(
                "SELECT anonymous_id, user_id FROM {ks}.people_joins WHERE partner_id = ? AND bucket = ? AND anonymous_id IN ?"
            ), true)
            .await?,
            insert_user_id: prepare(format!(
                "INSERT INTO {ks}.people_user_ids (partner_id, user_id, anonymous_id) VALUES (?, ?, ?)"
            ), true)
            .await?,
            select_user_ids: prepare(format!(
                "SELECT anonymous_id FROM {ks}.people_user_ids WHERE partner_id = ? AND user_id = ?"
            ), true)
            .await?,
            insert_anonymous_hour: prepare(format!(
                "INSERT INTO {ks}.people_anonymous_hours (partner_id, anonymous_id, hour) VALUES (?, ?, ?) USING TTL ?"
            ), true)
            .await?,
            select_anonymous_hours: prepare(format!(
                "SELECT hour FROM {ks}.people_anonymous_hours WHERE partner_id = ? AND anonymous_id = ?"
            ), true)
            .await?,
            known: moka::sync::Cache::new(REMEMBERED_JOINS),
            hours_known: moka::sync::Cache::new(REMEMBERED_HOURS),
        })
    }
}

/// Records the hours of `events` without a user id, then the joins they ask for; a join
/// first recorded touches the hours of its anonymous id's earlier events.
pub(super) async fn record(store: &CassandraStore, events: &[&Event]) -> Result<(), StoreError> {
    record_anonymous_hours(store, events).await?;
    let statements = &store.join_statements;
    for event in events {
        for (anonymous, user) in joins_of(event) {
            let remembered = (event.partner_id, anonymous);
            if statements.known.get(&remembered).as_ref() == Some(&user) {
                continue;
            }
            let (partner, anonymous) = (remembered.0, remembered.1.as_str());
            let bucket = bucket_of(anonymous, JOIN_BUCKETS);
            let outcome = store
                .transaction(
                    &statements.insert_join,
                    (partner, bucket, anonymous, user.as_str(), Utc::now()),
                )
                .await?;
            let first = if outcome.applied {
                touch_anonymous_hours(store, partner, anonymous).await?;
                user.clone()
            } else {
                outcome
                    .existing_text("user_id")
                    .ok_or_else(|| corrupt("a join without a user"))?
                    .to_string()
            };
            if first != user {
                store
                    .execute(
                        &statements.insert_conflict,
                        (partner, anonymous, user.as_str(), Utc::now()),
                    )
                    .await?;
            }
            // Written by every writer learning the join, so a crash after the join's own
            // write is mended by the next event asking for it.
            store
                .execute(
                    &statements.insert_user_id,
                    (partner, first.as_str(), anonymous),
                )
                .await?;
            statements.known.insert(remembered, first);
        }
    }
    Ok(())
}

/// Records the hours holding `events` without a user id (each once per process).
async fn record_anonymous_hours(
    store: &CassandraStore,
    events: &[&Event],
) -> Result<(), StoreError> {
    let statements = &store.join_statements;
    let mut fresh = Vec::new();
    for event in events.iter().filter(|event| event.user_id.is_none()) {
        let Some(anonymous) = &event.anonymous_id else {
            continue;
        };
        let key = (
            event.partner_id,
            anonymous.clone(),
            Hour::of(event.timestamp),
        );
        if !statements.hours_known.contains_key(&key) {
            statements.hours_known.insert(key.clone(), ());
            fresh.push(key);
        }
    }
    let written = async {
        let mut writes = Vec::with_capacity(fresh.len());
        for (partner, anonymous, hour) in &fresh {
            let ttl = ttl_seconds(store, *partner).await?;
            let hour = i32::try_from(hour.0).unwrap_or(i32::MAX);
            let values = (*partner, anonymous.as_str(), hour, ttl);
            writes.push(store.execute(&statements.insert_anonymous_hour, values));
        }
        all(store, writes).await
    };
    if let Err(error) = written.await {
        // Not known after all: the next batch writes them again.
        for key in fresh {
            statements.hours_known.invalidate(&key);
        }
        return Err(error);
    }
    Ok(())
}

/// Touches the hours holding `anonymous`'s events without a user id, so they are folded
/// again under the user it was just joined to.
async fn touch_anonymous_hours(
    store: &CassandraStore,
    partner: Uuid,
    anonymous: &str,
) -> Result<(), StoreError> {
    let statement = &store.join_statements.select_anonymous_hours;
    let rows: Vec<(i32,)> = store.select(statement, (partner, anonymous)).await?;
    if rows.is_empty() {
        return Ok(());
    }
    let ttl = ttl_seconds(store, partner).await?;
    let hours: HashMap<(Uuid, Hour), i32> = rows
        .into_iter()
        .filter_map(|(hour,)| Some(((partner, Hour(u32::try_from(hour).ok()?)), ttl)))
        .collect();
    touch(store, &hours).await
}

/// The anonymous ids joined to `user`, in id order.
pub(super) async fn anonymous_ids_of(
    store: &CassandraStore,
    partner: Uuid,
    user: &str,
) -> Result<Vec<String>, StoreError> {
    let statement = &store.join_statements.select_user_ids;
    let rows: Vec<(String,)> = store.select(statement, (partner, user)).await?;
    Ok(rows.into_iter().map(|(anonymous,)| anonymous).collect())
}

/// The joins of those of `anonymous_ids` that have one: one query per bucket and chunk.
pub(super) async fn among(
    store: &CassandraStore,
    partner: Uuid,
    anonymous_ids: &[String],
) -> Result<Joins, StoreError> {
    let mut by_bucket: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for anonymous in anonymous_ids {
        by_bucket
            .entry(bucket_of(anonymous, JOIN_BUCKETS))
            .or_default()
            .push(anonymous);
    }
    let statement = &store.join_statements.select_joins_among;
    let reads: Vec<_> = by_bucket
        .iter()
        .flat_map(|(bucket, ids)| {
            ids.chunks(LOOKUP_CHUNK).map(move |chunk| {
                store.select::<(String, String)>(statement, (partner, *bucket, chunk))
            })
        })
        .collect();
    let found: Vec<Vec<(String, String)>> = futures::stream::iter(reads)
        .buffer_unordered(store.write_concurrency)
        .try_collect()
        .await?;
    let mut joins = Joins::default();
    for (anonymous, user) in found.into_iter().flatten() {
        joins.insert(anonymous, user);
    }
    Ok(joins)
}

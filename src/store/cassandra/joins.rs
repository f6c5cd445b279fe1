//! People's joins on Cassandra (`cql/009_people.cql`): written by the ingest writers with
//! `IF NOT EXISTS`, so the first pairing of an anonymous id wins across instances; a later
//! different one is recorded apart. Browsers send their anonymous id with every event of a
//! signed-in user, so the joins this process has seen are remembered and not written
//! again (a lightweight transaction is four round trips).

use std::ops::ControlFlow;

use chrono::Utc;
use scylla::client::session::Session;
use scylla::response::PagingState;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::rows::bucket_of;
use super::statements::prepare_statement;
use super::{CassandraStore, corrupt, driver_error};
use crate::model::Event;
use crate::people::{Joins, joins_of};
use crate::store::StoreError;

/// Partitions a partner's joins spread over.
const JOIN_BUCKETS: u32 = 16;
/// Joins remembered by this process: (partner, anonymous id) → user.
const REMEMBERED_JOINS: u64 = 200_000;
const PAGE_SIZE: i32 = 5_000;

pub struct JoinStatements {
    insert_join: PreparedStatement,
    insert_conflict: PreparedStatement,
    select_joins: PreparedStatement,
    /// Joins already in the table, as this process learnt them.
    known: moka::sync::Cache<(Uuid, String), String>,
}

impl JoinStatements {
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
            select_joins: prepare(format!(
                "SELECT anonymous_id, user_id FROM {ks}.people_joins WHERE partner_id = ? AND bucket = ?"
            ), true)
            .await?,
            known: moka::sync::Cache::new(REMEMBERED_JOINS),
        })
    }
}

/// Records the joins `events` ask for.
pub(super) async fn record(store: &CassandraStore, events: &[&Event]) -> Result<(), StoreError> {
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
            statements.known.insert(remembered, first);
        }
    }
    Ok(())
}

/// Every join of `partner`, bucket by bucket, page by page.
pub(super) async fn read(store: &CassandraStore, partner: Uuid) -> Result<Joins, StoreError> {
    let statement = &store.join_statements.select_joins;
    let mut joins = Joins::default();
    for bucket in 0..JOIN_BUCKETS {
        let bucket = i32::try_from(bucket).expect("16 buckets");
        let mut paging = PagingState::start();
        loop {
            let (result, next) = store
                .session
                .execute_single_page(statement, (partner, bucket), paging)
                .await
                .map_err(driver_error)?;
            let rows = result.into_rows_result().map_err(corrupt)?;
            for row in rows.rows::<(String, String)>().map_err(corrupt)? {
                let (anonymous, user) = row.map_err(corrupt)?;
                joins.insert(anonymous, user);
            }
            match next.into_paging_control_flow() {
                ControlFlow::Continue(state) => paging = state,
                ControlFlow::Break(()) => break,
            }
        }
    }
    Ok(joins)
}

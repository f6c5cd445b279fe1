//! Forgetting people on Cassandra once their events are erased: the joins of an erased
//! user's anonymous ids (or of an erased anonymous id) both ways, the conflicts naming
//! them, the anonymous ids' hours, and what this process remembers of them (another
//! instance's memory of a join only skips rewriting it); for a purged partner, all of its.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::CassandraStore;
use super::joins::{JOIN_BUCKETS, among, anonymous_ids_of};
use super::rows::bucket_of;
use super::statements::prepare_statement;
use crate::model::{Erasure, ErasureSubject};
use crate::store::StoreError;

pub struct ForgetStatements {
    delete_join: PreparedStatement,
    delete_user_ids: PreparedStatement,
    delete_user_id: PreparedStatement,
    select_conflicts: PreparedStatement,
    select_all_conflicts: PreparedStatement,
    delete_conflicts: PreparedStatement,
    delete_conflict: PreparedStatement,
    delete_anonymous_hours: PreparedStatement,
    select_bucket: PreparedStatement,
    delete_bucket: PreparedStatement,
    delete_all_conflicts: PreparedStatement,
    delete_event_types: PreparedStatement,
}

impl ForgetStatements {
    pub async fn prepare(
        session: &Session,
        keyspace: &str,
    ) -> Result<ForgetStatements, StoreError> {
        let ks = keyspace;
        let prepare = |cql: String| prepare_statement(session, cql, true);
        Ok(ForgetStatements {
            delete_join: prepare(format!(
                "DELETE FROM {ks}.people_joins WHERE partner_id = ? AND bucket = ? AND anonymous_id = ?"
            ))
            .await?,
            delete_user_ids: prepare(format!(
                "DELETE FROM {ks}.people_user_ids WHERE partner_id = ? AND user_id = ?"
            ))
            .await?,
            delete_user_id: prepare(format!(
                "DELETE FROM {ks}.people_user_ids WHERE partner_id = ? AND user_id = ? AND anonymous_id = ?"
            ))
            .await?,
            select_conflicts: prepare(format!(
                "SELECT user_id FROM {ks}.people_join_conflicts WHERE partner_id = ? AND anonymous_id = ?"
            ))
            .await?,
            select_all_conflicts: prepare(format!(
                "SELECT anonymous_id, user_id FROM {ks}.people_join_conflicts WHERE partner_id = ?"
            ))
            .await?,
            delete_conflicts: prepare(format!(
                "DELETE FROM {ks}.people_join_conflicts WHERE partner_id = ? AND anonymous_id = ?"
            ))
            .await?,
            delete_conflict: prepare(format!(
                "DELETE FROM {ks}.people_join_conflicts WHERE partner_id = ? AND anonymous_id = ? AND user_id = ?"
            ))
            .await?,
            delete_anonymous_hours: prepare(format!(
                "DELETE FROM {ks}.people_anonymous_hours WHERE partner_id = ? AND anonymous_id = ?"
            ))
            .await?,
            select_bucket: prepare(format!(
                "SELECT anonymous_id, user_id FROM {ks}.people_joins WHERE partner_id = ? AND bucket = ?"
            ))
            .await?,
            delete_bucket: prepare(format!(
                "DELETE FROM {ks}.people_joins WHERE partner_id = ? AND bucket = ?"
            ))
            .await?,
            delete_all_conflicts: prepare(format!(
                "DELETE FROM {ks}.people_join_conflicts WHERE partner_id = ?"
            ))
            .await?,
            delete_event_types: prepare(format!(
                "DELETE FROM {ks}.event_types_by_partner WHERE partner_id = ?"
            ))
            .await?,
        })
    }
}

/// The users `anonymous` was seen with: its join's, then its conflicts'.
pub(super) async fn users_of_anonymous(
    store: &CassandraStore,
    partner: Uuid,
    anonymous: &str,
) -> Result<Vec<String>, StoreError> {
    let joins = among(store, partner, &[anonymous.to_string()]).await?;
    let mut users: Vec<String> = joins
        .user_of(anonymous)
        .map(str::to_string)
        .into_iter()
        .collect();
    let statement = &store.lifecycle_statements.forget.select_conflicts;
    let rows: Vec<(String,)> = store.select(statement, (partner, anonymous)).await?;
    users.extend(rows.into_iter().map(|(user,)| user));
    Ok(users)
}

/// Forgets an erased person's joins: those of the user's anonymous ids (or of the erased
/// anonymous id), both ways, the conflicts naming them, the anonymous ids' hours, and
/// what this process remembers of them (other instances' memory of a join only skips
/// rewriting it).
pub(super) async fn forget_person(
    store: &CassandraStore,
    erasure: &Erasure,
) -> Result<(), StoreError> {
    let statements = &store.lifecycle_statements.forget;
    let partner = erasure.partner_id;
    let (user, anonymous_ids): (Option<String>, Vec<String>) = match &erasure.subject {
        ErasureSubject::PartnerId(_) => return forget_partner(store, partner).await,
        ErasureSubject::UserId(user) => {
            let mut ids = anonymous_ids_of(store, partner, user).await?;
            ids.extend(erasure.anonymous_ids.iter().cloned());
            (Some(user.clone()), ids)
        }
        ErasureSubject::AnonymousId(anonymous) => {
            let joins = among(store, partner, std::slice::from_ref(anonymous)).await?;
            (
                joins.user_of(anonymous).map(str::to_string),
                vec![anonymous.clone()],
            )
        }
    };
    let joins = among(store, partner, &anonymous_ids).await?;
    for anonymous in &anonymous_ids {
        let bucket = bucket_of(anonymous, JOIN_BUCKETS);
        if user.is_some() && joins.user_of(anonymous) == user.as_deref() {
            let values = (partner, bucket, anonymous.as_str());
            store.execute(&statements.delete_join, values).await?;
        }
        if let Some(user) = &user {
            let values = (partner, user.as_str(), anonymous.as_str());
            store.execute(&statements.delete_user_id, values).await?;
        }
        let values = (partner, anonymous.as_str());
        store.execute(&statements.delete_conflicts, values).await?;
        store
            .execute(&statements.delete_anonymous_hours, values)
            .await?;
        store.join_statements.forget_known(partner, anonymous);
    }
    if let ErasureSubject::UserId(user) = &erasure.subject {
        store
            .execute(&statements.delete_user_ids, (partner, user.as_str()))
            .await?;
        let conflicts: Vec<(String, String)> = store
            .select(&statements.select_all_conflicts, (partner,))
            .await?;
        for (anonymous, seen_with) in conflicts.iter().filter(|(_, seen)| seen == user) {
            let values = (partner, anonymous.as_str(), seen_with.as_str());
            store.execute(&statements.delete_conflict, values).await?;
        }
    }
    Ok(())
}

/// A purge's last step: every join of the partner, with its users' index and the joined
/// anonymous ids' hours, its conflicts and its event types.
async fn forget_partner(store: &CassandraStore, partner: Uuid) -> Result<(), StoreError> {
    let statements = &store.lifecycle_statements.forget;
    for bucket in 0..i32::try_from(JOIN_BUCKETS).unwrap_or(i32::MAX) {
        let joins: Vec<(String, String)> = store
            .select(&statements.select_bucket, (partner, bucket))
            .await?;
        for (anonymous, user) in &joins {
            let (anonymous, user) = (anonymous.as_str(), user.as_str());
            store
                .execute(&statements.delete_user_ids, (partner, user))
                .await?;
            store
                .execute(&statements.delete_anonymous_hours, (partner, anonymous))
                .await?;
        }
        store
            .execute(&statements.delete_bucket, (partner, bucket))
            .await?;
    }
    store
        .execute(&statements.delete_all_conflicts, (partner,))
        .await?;
    store
        .execute(&statements.delete_event_types, (partner,))
        .await?;
    store.join_statements.forget_all_known();
    Ok(())
}

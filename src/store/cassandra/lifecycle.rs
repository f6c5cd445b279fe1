//! The data lifecycle on Cassandra (`cql/012_lifecycle.cql`): erasure records (JSON, by
//! partner) with the unfinished ones listed apart, and the audit log by month. Erasing is
//! `erase`.

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Months, Utc};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::statements::prepare_statement;
use super::{CassandraStore, corrupt, erase, forget, sweep};
use crate::model::{AuditEntry, Erasure};
use crate::rollups::Hour;
use crate::store::{AuditQuery, Erased, LifecycleStore, StoreError};

/// The one partition of `erasures_unfinished` (a handful of rows at any time).
const UNFINISHED_SHARD: i32 = 0;

pub struct LifecycleStatements {
    insert_erasure: PreparedStatement,
    select_erasure: PreparedStatement,
    select_erasures: PreparedStatement,
    insert_unfinished: PreparedStatement,
    delete_unfinished: PreparedStatement,
    select_unfinished: PreparedStatement,
    insert_audit: PreparedStatement,
    select_audit_from: PreparedStatement,
    select_audit_after: PreparedStatement,
    pub(super) delete_event_by_partner: PreparedStatement,
    pub(super) delete_event_by_subsystem: PreparedStatement,
    pub(super) delete_event_id: PreparedStatement,
    pub(super) delete_rollup_sketch: PreparedStatement,
    pub(super) delete_partner_day: PreparedStatement,
    pub(super) delete_subsystem_day: PreparedStatement,
    pub(super) delete_event_day: PreparedStatement,
    pub(super) delete_anonymous_hour: PreparedStatement,
    pub(super) forget: forget::ForgetStatements,
}

impl LifecycleStatements {
    pub async fn prepare(
        session: &Session,
        keyspace: &str,
    ) -> Result<LifecycleStatements, StoreError> {
        let ks = keyspace;
        let prepare = |cql: String| prepare_statement(session, cql, true);
        Ok(LifecycleStatements {
            insert_erasure: prepare(format!(
                "INSERT INTO {ks}.erasures (partner_id, id, record) VALUES (?, ?, ?)"
            ))
            .await?,
            select_erasure: prepare(format!(
                "SELECT record FROM {ks}.erasures WHERE partner_id = ? AND id = ?"
            ))
            .await?,
            select_erasures: prepare(format!(
                "SELECT record FROM {ks}.erasures WHERE partner_id = ?"
            ))
            .await?,
            insert_unfinished: prepare(format!(
                "INSERT INTO {ks}.erasures_unfinished (shard, partner_id, id) VALUES (?, ?, ?)"
            ))
            .await?,
            delete_unfinished: prepare(format!(
                "DELETE FROM {ks}.erasures_unfinished WHERE shard = ? AND partner_id = ? AND id = ?"
            ))
            .await?,
            select_unfinished: prepare(format!(
                "SELECT partner_id, id FROM {ks}.erasures_unfinished WHERE shard = ?"
            ))
            .await?,
            insert_audit: prepare(format!(
                "INSERT INTO {ks}.audit_log (month, at, id, partner_id, entry) VALUES (?, ?, ?, ?, ?)"
            ))
            .await?,
            select_audit_from: prepare(format!(
                "SELECT at, id, entry FROM {ks}.audit_log WHERE month = ? AND at >= ? LIMIT ?"
            ))
            .await?,
            select_audit_after: prepare(format!(
                "SELECT at, id, entry FROM {ks}.audit_log WHERE month = ? AND (at, id) > (?, ?) LIMIT ?"
            ))
            .await?,
            delete_event_by_partner: prepare(format!(
                "DELETE FROM {ks}.events_by_partner_day WHERE partner_id = ? AND day = ? AND bucket = ? AND event_time = ? AND event_id = ?"
            ))
            .await?,
            delete_event_by_subsystem: prepare(format!(
                "DELETE FROM {ks}.events_by_subsystem_day WHERE subsystem_id = ? AND day = ? AND bucket = ? AND event_time = ? AND event_id = ?"
            ))
            .await?,
            delete_event_id: prepare(format!(
                "DELETE FROM {ks}.event_ids_by_partner WHERE partner_id = ? AND event_id = ?"
            ))
            .await?,
            delete_partner_day: prepare(format!(
                "DELETE FROM {ks}.events_by_partner_day WHERE partner_id = ? AND day = ? AND bucket = ?"
            ))
            .await?,
            delete_subsystem_day: prepare(format!(
                "DELETE FROM {ks}.events_by_subsystem_day WHERE subsystem_id = ? AND day = ? AND bucket = ?"
            ))
            .await?,
            delete_event_day: prepare(format!(
                "DELETE FROM {ks}.event_days WHERE owner = ? AND day = ?"
            ))
            .await?,
            forget: forget::ForgetStatements::prepare(session, keyspace).await?,
            delete_anonymous_hour: prepare(format!(
                "DELETE FROM {ks}.people_anonymous_hours WHERE partner_id = ? AND anonymous_id = ? AND hour = ?"
            ))
            .await?,
            delete_rollup_sketch: prepare(format!(
                "DELETE FROM {ks}.rollup_sketches USING TIMESTAMP ? WHERE owner = ? AND event_type = ? AND period = ? AND hour = ?"
            ))
            .await?,
        })
    }
}

/// `yyyymm`: the audit log's partition of `at`.
fn month_of(at: DateTime<Utc>) -> i32 {
    at.year() * 100 + at.month() as i32
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(corrupt)
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(corrupt)
}

#[async_trait]
impl LifecycleStore for CassandraStore {
    async fn put_erasure(&self, erasure: &Erasure) -> Result<(), StoreError> {
        let statements = &self.lifecycle_statements;
        let (partner, id) = (erasure.partner_id, erasure.id);
        self.execute(&statements.insert_erasure, (partner, id, json(erasure)?))
            .await?;
        let listed = (UNFINISHED_SHARD, partner, id);
        match erasure.status.is_finished() {
            true => self.execute(&statements.delete_unfinished, listed).await,
            false => self.execute(&statements.insert_unfinished, listed).await,
        }
    }

    async fn erasure(&self, partner: Uuid, id: Uuid) -> Result<Option<Erasure>, StoreError> {
        let statement = &self.lifecycle_statements.select_erasure;
        let rows: Vec<(String,)> = self.select(statement, (partner, id)).await?;
        rows.first().map(|(record,)| parse(record)).transpose()
    }

    async fn erasures(&self, partner: Uuid) -> Result<Vec<Erasure>, StoreError> {
        let statement = &self.lifecycle_statements.select_erasures;
        let rows: Vec<(String,)> = self.select(statement, (partner,)).await?;
        rows.iter().map(|(record,)| parse(record)).collect()
    }

    async fn unfinished_erasures(&self) -> Result<Vec<Erasure>, StoreError> {
        let statement = &self.lifecycle_statements.select_unfinished;
        let listed: Vec<(Uuid, Uuid)> = self.select(statement, (UNFINISHED_SHARD,)).await?;
        let mut found = Vec::with_capacity(listed.len());
        for (partner, id) in listed {
            if let Some(erasure) = self.erasure(partner, id).await? {
                found.push(erasure);
            }
        }
        Ok(found)
    }

    async fn erase_hours(&self, erasure: &Erasure, hours: &[Hour]) -> Result<Erased, StoreError> {
        let erased = erase::erase_hours(self, erasure, hours).await?;
        if erased.events > 0 {
            // Not atomic with the deletions: a crash between them leaves the receipt short
            // of this day's events (the README says so).
            let mut record = self
                .erasure(erasure.partner_id, erasure.id)
                .await?
                .unwrap_or_else(|| erasure.clone());
            record.events_deleted += erased.events;
            record.hours_recounted += erased.hours;
            self.put_erasure(&record).await?;
        }
        Ok(erased)
    }

    async fn sweep_expired(
        &self,
        partner: Uuid,
        cutoff: DateTime<Utc>,
    ) -> Result<Erased, StoreError> {
        sweep::sweep(self, partner, cutoff).await
    }

    async fn forget_person(&self, erasure: &Erasure) -> Result<(), StoreError> {
        forget::forget_person(self, erasure).await
    }

    async fn users_of_anonymous(
        &self,
        partner: Uuid,
        anonymous: String,
    ) -> Result<Vec<String>, StoreError> {
        forget::users_of_anonymous(self, partner, &anonymous).await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let values = (
            month_of(entry.at),
            entry.at,
            entry.id,
            entry.partner_id,
            json(entry)?,
        );
        self.execute(&self.lifecycle_statements.insert_audit, values)
            .await
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let statements = &self.lifecycle_statements;
        let limit = i32::try_from(query.limit).unwrap_or(i32::MAX);
        let mut found = Vec::new();
        let mut after = query.after;
        let first = after.map_or(query.from, |(at, _)| at);
        let mut month = first.date_naive().with_day(1).expect("day one");
        while month <= query.to.date_naive() {
            let partition = month.year() * 100 + month.month() as i32;
            // Page through the month: entries of other partners may fill a page.
            loop {
                let rows: Vec<(DateTime<Utc>, Uuid, String)> = match after {
                    Some((at, id)) if month_of(at) == partition => {
                        let values = (partition, at, id, limit);
                        self.select(&statements.select_audit_after, values).await?
                    }
                    _ => {
                        let values = (partition, query.from, limit);
                        self.select(&statements.select_audit_from, values).await?
                    }
                };
                let full = rows.len() == query.limit;
                for (at, id, text) in rows {
                    after = Some((at, id));
                    let entry: AuditEntry = parse(&text)?;
                    if entry.at >= query.to {
                        return Ok(found);
                    }
                    if query
                        .partner
                        .is_none_or(|partner| partner == entry.partner_id)
                    {
                        found.push(entry);
                        if found.len() == query.limit {
                            return Ok(found);
                        }
                    }
                }
                if !full {
                    break;
                }
            }
            month = month + Months::new(1);
        }
        Ok(found)
    }
}

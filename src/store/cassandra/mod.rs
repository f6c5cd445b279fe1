//! The production store: Apache Cassandra 4.1+/5.0 (or ScyllaDB) through the `scylla`
//! driver, with the tables of `cql/`.
//!
//! - `session`    connecting with the configured consistency, timeouts and routing
//! - `keyspace`   whether it exists, its replication, and what `serve` does about both
//! - `migrate`    the compiled-in `cql/` files and how they are applied
//! - `settings`   what the keyspace records and every instance must share (`partner_buckets`)
//! - `schema_change` one DDL statement, safe while other instances migrate too
//! - `statements` every prepared statement, marked idempotent where it is
//! - `rows`       the events row shape, day/bucket placement, write fingerprints
//! - `events_write` de-duplication claims and per-partition unlogged batches
//! - `events_read`  day/bucket fan-out, merge, and the cursor it resumes from (`cursor`)
//! - `metadata`   partners, subsystems, API keys and event structures
//! - `rollups`    touches on write, folds of settled hours, the rollups reports read,
//!   breakdown cells (prepared in `breakdown_statements`)
//! - `backfill`   enrichment for events stored before it existed

mod backfill;
mod breakdown_statements;
pub(crate) mod cursor;
mod day_range;
mod erase;
mod event_claims;
mod events_read;
mod events_write;
mod export;
mod forget;
mod joins;
pub mod keyspace;
mod lifecycle;
mod metadata;
pub mod migrate;
mod rollups;
mod rows;
mod schema_change;
mod session;
mod settings;
mod statements;
mod sweep;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};
use uuid::Uuid;

use crate::config::CassandraConfig;
use crate::model::Event;
use crate::people::Joins;
use crate::rollups::{
    BreakdownDifference, BreakdownQuery, BreakdownRead, Hour, RollupDifference, RollupQuery,
    RollupRead, SettleOutcome,
};
use crate::store::{
    BreakdownStore, EventPage, EventQuery, EventStore, PeopleStore, RollupStore, Store, StoreError,
    WriteOutcome,
};
use breakdown_statements::BreakdownStatements;
use statements::Statements;

/// How long a partner's `retentionDays` (the events' TTL) is cached by the writers.
const RETENTION_CACHE_TTL: Duration = Duration::from_secs(30);
const RETENTION_CACHE_CAPACITY: u64 = 100_000;

pub struct CassandraStore {
    session: Session,
    statements: Statements,
    breakdown_statements: BreakdownStatements,
    join_statements: joins::JoinStatements,
    export_statements: export::ExportStatements,
    lifecycle_statements: lifecycle::LifecycleStatements,
    buckets: u32,
    write_concurrency: usize,
    max_batch_bytes: usize,
    retention_days: moka::future::Cache<Uuid, Option<u32>>,
    rollup_settle: Duration,
    rollup_fold_interval: Duration,
}

impl CassandraStore {
    /// Connects, creates the keyspace (unless `create_keyspace` is off) or the tables
    /// missing from it (a new release's), checks the recorded `partner_buckets`, and
    /// prepares every statement. Instances starting together all run the migration; each
    /// waits for the others' changes (`schema_change`) rather than failing on them.
    pub async fn open(config: &CassandraConfig) -> Result<CassandraStore, StoreError> {
        let session = session::connect(config).await?;
        keyspace::check_before_start(&session, config).await?;
        if migrate::needs_migration(&session, config).await? {
            let applied = migrate::apply(&session, config).await?;
            tracing::info!(keyspace = %config.keyspace, statements = applied, "applied the cql/ schema (keyspace or tables were missing)");
        } else {
            // Another instance may have just created the tables: not every node knows them
            // yet, and preparing a statement on one that doesn't would fail.
            schema_change::await_agreement(&session).await?;
        }
        settings::check_partner_buckets(&session, config).await?;
        let statements = Statements::prepare(&session, &config.keyspace).await?;
        let breakdown_statements = BreakdownStatements::prepare(&session, &config.keyspace).await?;
        let join_statements = joins::JoinStatements::prepare(&session, &config.keyspace).await?;
        let export_statements =
            export::ExportStatements::prepare(&session, &config.keyspace).await?;
        let lifecycle_statements =
            lifecycle::LifecycleStatements::prepare(&session, &config.keyspace).await?;
        Ok(CassandraStore {
            session,
            statements,
            breakdown_statements,
            join_statements,
            export_statements,
            lifecycle_statements,
            buckets: config.partner_buckets,
            write_concurrency: config.write_concurrency,
            max_batch_bytes: usize::try_from(config.max_batch_size.as_u64()).unwrap_or(usize::MAX),
            retention_days: moka::future::Cache::builder()
                .max_capacity(RETENTION_CACHE_CAPACITY)
                .time_to_live(RETENTION_CACHE_TTL)
                .build(),
            rollup_settle: config.rollup_settle,
            rollup_fold_interval: config.rollup_fold_interval,
        })
    }

    /// `volcanion migrate`: applies every `cql/` statement (idempotent), whether or not
    /// the keyspace exists. Returns how many statements ran.
    pub async fn migrate(config: &CassandraConfig) -> Result<usize, StoreError> {
        let session = session::connect(config).await?;
        migrate::apply(&session, config).await
    }

    /// Drops the configured keyspace and everything in it (test clean-up).
    pub async fn drop_keyspace(config: &CassandraConfig) -> Result<(), StoreError> {
        let session = session::connect(config).await?;
        let drop = format!("DROP KEYSPACE IF EXISTS {}", config.keyspace);
        schema_change::apply(&session, &drop).await
    }

    async fn execute(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(driver_error)?;
        Ok(())
    }

    /// The rows of a read, each decoded as `R`.
    async fn select<R>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Vec<R>, StoreError>
    where
        R: for<'frame, 'metadata> scylla::deserialize::row::DeserializeRow<'frame, 'metadata>,
    {
        let result = self
            .session
            .execute_unpaged(statement, values)
            .await
            .map_err(driver_error)?;
        let rows = result.into_rows_result().map_err(corrupt)?;
        rows.rows::<R>()
            .map_err(corrupt)?
            .collect::<Result<Vec<R>, _>>()
            .map_err(corrupt)
    }

    /// Runs a lightweight transaction (`IF NOT EXISTS`, `IF col = ?`, `IF EXISTS`).
    async fn transaction(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<TransactionOutcome, StoreError> {
        let result = self
            .session
            .execute_unpaged(statement, values)
            .await
            .map_err(driver_error)?;
        let rows = result.into_rows_result().map_err(corrupt)?;
        let names: Vec<String> = rows
            .column_specs()
            .iter()
            .map(|spec| spec.name().to_string())
            .collect();
        let row: Row = rows.first_row().map_err(corrupt)?;
        let columns: HashMap<String, CqlValue> = names
            .into_iter()
            .zip(row.columns)
            .filter_map(|(name, value)| value.map(|value| (name, value)))
            .collect();
        let applied = matches!(columns.get("[applied]"), Some(CqlValue::Boolean(true)));
        Ok(TransactionOutcome { applied, columns })
    }
}

/// What a lightweight transaction did; when not applied, the current row's columns.
struct TransactionOutcome {
    applied: bool,
    columns: HashMap<String, CqlValue>,
}

impl TransactionOutcome {
    fn existing_uuid(&self, column: &str) -> Option<Uuid> {
        match self.columns.get(column) {
            Some(CqlValue::Uuid(id)) => Some(*id),
            _ => None,
        }
    }

    fn existing_blob(&self, column: &str) -> Option<&[u8]> {
        match self.columns.get(column) {
            Some(CqlValue::Blob(bytes)) => Some(bytes),
            _ => None,
        }
    }

    fn existing_int(&self, column: &str) -> Option<i32> {
        match self.columns.get(column) {
            Some(CqlValue::Int(value)) => Some(*value),
            _ => None,
        }
    }

    fn existing_text(&self, column: &str) -> Option<&str> {
        match self.columns.get(column) {
            Some(CqlValue::Text(text)) => Some(text),
            _ => None,
        }
    }

    fn existing_timestamp(&self, column: &str) -> Option<DateTime<Utc>> {
        match self.columns.get(column) {
            Some(CqlValue::Timestamp(millis)) => DateTime::from_timestamp_millis(millis.0),
            _ => None,
        }
    }
}

#[async_trait]
impl EventStore for CassandraStore {
    async fn write_events(&self, events: &[Event]) -> Result<WriteOutcome, StoreError> {
        events_write::write_events(self, events).await
    }

    async fn backfill_enrichment(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
        enrich: &crate::store::EnrichStored<'_>,
    ) -> Result<u64, StoreError> {
        backfill::backfill_enrichment(self, partner, from, to, enrich).await
    }

    async fn query_events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        events_read::query_events(self, query).await
    }

    async fn export_page(
        &self,
        query: &crate::store::ExportQuery,
    ) -> Result<crate::store::ExportPage, StoreError> {
        export::page(self, query).await
    }
}

#[async_trait]
impl RollupStore for CassandraStore {
    async fn hourly_rollups(&self, query: &RollupQuery) -> Result<RollupRead, StoreError> {
        rollups::read(self, query).await
    }

    async fn rebuild_rollups(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
    ) -> Result<u64, StoreError> {
        rollups::rebuild(self, partner, from, to).await
    }

    async fn verify_rollups(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
    ) -> Result<Vec<RollupDifference>, StoreError> {
        rollups::verify(self, partner, from, to).await
    }

    fn settle_interval(&self) -> Option<Duration> {
        Some(self.rollup_fold_interval)
    }

    async fn settle_rollups(&self, now: DateTime<Utc>) -> Result<SettleOutcome, StoreError> {
        rollups::settle(self, now).await
    }
}

#[async_trait]
impl PeopleStore for CassandraStore {
    async fn joins_among(
        &self,
        partner: Uuid,
        anonymous_ids: Vec<String>,
    ) -> Result<Joins, StoreError> {
        joins::among(self, partner, &anonymous_ids).await
    }

    async fn anonymous_ids_of(
        &self,
        partner: Uuid,
        user: String,
    ) -> Result<Vec<String>, StoreError> {
        joins::anonymous_ids_of(self, partner, &user).await
    }

    async fn first_event_day(&self, partner: Uuid) -> Result<Option<DateTime<Utc>>, StoreError> {
        let statement = &self.statements.select_first_event_day;
        let days: Vec<(chrono::NaiveDate,)> = self.select(statement, (partner,)).await?;
        Ok(days
            .first()
            .map(|(day,)| day.and_time(chrono::NaiveTime::MIN).and_utc()))
    }

    /// None: a join touches the hours it changes, and reports read them raw (joined)
    /// until they are folded again.
    async fn recount_pending_since(
        &self,
        _partner: Uuid,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(None)
    }
}

#[async_trait]
impl Store for CassandraStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.execute(&self.statements.ping, ()).await
    }

    fn backend_name(&self) -> &'static str {
        "cassandra"
    }
}

/// Every driver failure means the store could not do the work right now (no node, a
/// timeout, an overloaded or unavailable replica set); the cause stays in the message.
fn driver_error(error: ExecutionError) -> StoreError {
    let kind = match &error {
        ExecutionError::RequestTimeout(_) => "client timeout",
        ExecutionError::ConnectionPoolError(_) | ExecutionError::EmptyPlan => "no connection",
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db_error, _)) => {
            match db_error {
                DbError::Unavailable { .. } => "replicas unavailable",
                DbError::ReadTimeout { .. } | DbError::WriteTimeout { .. } => "server timeout",
                DbError::Overloaded | DbError::IsBootstrapping => "overloaded",
                _ => "request refused",
            }
        }
        _ => "request failed",
    };
    StoreError::Unavailable(format!("cassandra {kind}: {error}"))
}

fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

#[async_trait]
impl BreakdownStore for CassandraStore {
    async fn breakdown_cells(&self, query: &BreakdownQuery) -> Result<BreakdownRead, StoreError> {
        rollups::breakdown_cells(self, query).await
    }

    async fn verify_breakdowns(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
    ) -> Result<Vec<BreakdownDifference>, StoreError> {
        rollups::verify_breakdowns(self, partner, from, to).await
    }
}

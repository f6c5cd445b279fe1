//! Every statement the store runs, prepared once at start. Plain reads and writes are
//! marked idempotent so the driver may retry them; lightweight transactions are not.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use crate::store::StoreError;

/// Columns of both events tables, in the order `rows::EventRow` binds and reads them.
pub const EVENT_COLUMNS: &str = "event_time, event_id, event_time_ns, partner_id, subsystem_id, \
    day, bucket, event_type, user_id, anonymous_id, properties, context, is_valid, \
    validation_errors, correlation_id, received_at, received_at_ns, enrichment";

pub struct Statements {
    pub insert_event_by_partner: PreparedStatement,
    pub insert_event_by_subsystem: PreparedStatement,
    pub select_events_by_partner: PreparedStatement,
    pub select_events_by_subsystem: PreparedStatement,
    pub claim_event_id: PreparedStatement,
    pub select_event_by_partner_key: PreparedStatement,
    pub select_event_by_subsystem_key: PreparedStatement,
    pub insert_event_day: PreparedStatement,
    pub select_event_days: PreparedStatement,
    pub select_first_event_day: PreparedStatement,

    pub touch_rollup_hour: PreparedStatement,
    pub insert_rollup_pending: PreparedStatement,
    pub select_rollup_pending: PreparedStatement,
    pub delete_rollup_pending: PreparedStatement,
    pub select_rollup_hours: PreparedStatement,
    pub fold_rollup_hour: PreparedStatement,
    pub insert_rollup_sketch: PreparedStatement,
    pub select_rollup_sketches: PreparedStatement,
    pub select_rollup_hour_folds: PreparedStatement,
    pub insert_rollup_day: PreparedStatement,
    pub select_rollup_days: PreparedStatement,
    pub insert_rollup_day_sketch: PreparedStatement,
    pub select_rollup_day_sketches: PreparedStatement,
    pub delete_rollup_hour_parts: PreparedStatement,
    pub insert_rollup_hour_part: PreparedStatement,
    pub select_rollup_hour_parts: PreparedStatement,
    pub delete_rollup_day_parts: PreparedStatement,
    pub insert_rollup_day_part: PreparedStatement,
    pub select_rollup_day_parts: PreparedStatement,

    pub claim_partner_code: PreparedStatement,
    pub release_partner_code: PreparedStatement,
    pub insert_partner: PreparedStatement,
    pub select_partner: PreparedStatement,
    pub list_partner_ids: PreparedStatement,
    pub select_partner_id_by_code: PreparedStatement,
    pub insert_partner_id: PreparedStatement,

    pub claim_subsystem_code: PreparedStatement,
    pub release_subsystem_code: PreparedStatement,
    pub insert_subsystem: PreparedStatement,
    pub select_subsystem: PreparedStatement,
    pub select_subsystem_id_by_code: PreparedStatement,
    pub list_subsystem_ids: PreparedStatement,

    pub claim_api_key_id: PreparedStatement,
    pub insert_api_key: PreparedStatement,
    pub insert_api_key_by_partner: PreparedStatement,
    pub select_api_key: PreparedStatement,
    pub select_api_key_by_key_id: PreparedStatement,
    pub list_api_key_ids: PreparedStatement,

    pub insert_schema: PreparedStatement,
    pub select_schema: PreparedStatement,
    pub list_schemas: PreparedStatement,
    pub delete_schema: PreparedStatement,

    pub insert_event_type: PreparedStatement,
    pub select_event_types: PreparedStatement,

    pub ping: PreparedStatement,
}

/// Whether the driver may send a statement again after a timeout.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    Idempotent,
    /// Lightweight transactions: a blind resend could report the first attempt's effect
    /// as a conflict, so the caller decides.
    NotIdempotent,
}

impl Statements {
    pub async fn prepare(session: &Session, keyspace: &str) -> Result<Statements, StoreError> {
        let ks = keyspace;
        let prepare =
            |cql: String, retry: Retry| prepare_statement(session, cql, retry == Retry::Idempotent);
        use Retry::{Idempotent, NotIdempotent};
        let event_markers = vec!["?"; EVENT_COLUMNS.split(',').count()].join(", ");
        Ok(Statements {
            insert_event_by_partner: prepare(
                format!("INSERT INTO {ks}.events_by_partner_day ({EVENT_COLUMNS}) VALUES ({event_markers}) USING TTL ?"),
                Idempotent,
            )
            .await?,
            insert_event_by_subsystem: prepare(
                format!("INSERT INTO {ks}.events_by_subsystem_day ({EVENT_COLUMNS}) VALUES ({event_markers}) USING TTL ?"),
                Idempotent,
            )
            .await?,
            select_events_by_partner: prepare(
                format!("SELECT {EVENT_COLUMNS} FROM {ks}.events_by_partner_day WHERE partner_id = ? AND day = ? AND bucket = ? AND event_time >= ? AND event_time < ?"),
                Idempotent,
            )
            .await?,
            select_events_by_subsystem: prepare(
                format!("SELECT {EVENT_COLUMNS} FROM {ks}.events_by_subsystem_day WHERE subsystem_id = ? AND day = ? AND bucket = ? AND event_time >= ? AND event_time < ?"),
                Idempotent,
            )
            .await?,
            claim_event_id: prepare(
                format!("INSERT INTO {ks}.event_ids_by_partner (partner_id, event_id, day, event_time, bucket, fingerprint) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?"),
                NotIdempotent,
            )
            .await?,
            // The rows at one exact key: is a claimed event really stored (`events_write`)?
            select_event_by_partner_key: prepare(
                format!("SELECT {EVENT_COLUMNS} FROM {ks}.events_by_partner_day WHERE partner_id = ? AND day = ? AND bucket = ? AND event_time = ? AND event_id = ?"),
                Idempotent,
            )
            .await?,
            select_event_by_subsystem_key: prepare(
                format!("SELECT event_id FROM {ks}.events_by_subsystem_day WHERE subsystem_id = ? AND day = ? AND bucket = ? AND event_time = ? AND event_id = ?"),
                Idempotent,
            )
            .await?,
            insert_event_day: prepare(
                format!("INSERT INTO {ks}.event_days (owner, day) VALUES (?, ?) USING TTL ?"),
                Idempotent,
            )
            .await?,
            select_event_days: prepare(
                format!("SELECT day FROM {ks}.event_days WHERE owner = ? AND day >= ? AND day <= ?"),
                Idempotent,
            )
            .await?,
            select_first_event_day: prepare(
                format!("SELECT day FROM {ks}.event_days WHERE owner = ? ORDER BY day ASC LIMIT 1"),
                Idempotent,
            )
            .await?,

            // Rollups (`rollups/`): client timestamps order touches and folds.
            touch_rollup_hour: prepare(
                format!("UPDATE {ks}.rollup_hours USING TIMESTAMP ? AND TTL ? SET touched_at = ? WHERE partner_id = ? AND period = ? AND hour = ?"),
                Idempotent,
            )
            .await?,
            insert_rollup_pending: prepare(
                format!("INSERT INTO {ks}.rollup_pending (shard, partner_id, hour, touched_at) VALUES (?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"),
                Idempotent,
            )
            .await?,
            select_rollup_pending: prepare(
                format!("SELECT partner_id, hour, touched_at FROM {ks}.rollup_pending WHERE shard = ? LIMIT ?"),
                Idempotent,
            )
            .await?,
            delete_rollup_pending: prepare(
                format!("DELETE FROM {ks}.rollup_pending USING TIMESTAMP ? WHERE shard = ? AND partner_id = ? AND hour = ?"),
                Idempotent,
            )
            .await?,
            select_rollup_hours: prepare(
                format!("SELECT hour, touched_at, folded_at, counts FROM {ks}.rollup_hours WHERE partner_id = ? AND period = ? AND hour >= ? AND hour < ?"),
                Idempotent,
            )
            .await?,
            fold_rollup_hour: prepare(
                format!("UPDATE {ks}.rollup_hours USING TIMESTAMP ? AND TTL ? SET folded_at = ?, counts = ? WHERE partner_id = ? AND period = ? AND hour = ?"),
                Idempotent,
            )
            .await?,
            insert_rollup_sketch: prepare(
                format!("INSERT INTO {ks}.rollup_sketches (owner, event_type, period, hour, sketch) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"),
                Idempotent,
            )
            .await?,
            select_rollup_sketches: prepare(
                format!("SELECT hour, sketch FROM {ks}.rollup_sketches WHERE owner = ? AND event_type = ? AND period = ? AND hour >= ? AND hour < ?"),
                Idempotent,
            )
            .await?,
            select_rollup_hour_folds: prepare(
                format!("SELECT hour, touched_at, folded_at FROM {ks}.rollup_hours WHERE partner_id = ? AND period = ? AND hour >= ? AND hour < ?"),
                Idempotent,
            )
            .await?,
            insert_rollup_day: prepare(
                format!("INSERT INTO {ks}.rollup_days (partner_id, period, day, covers, counts) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"),
                Idempotent,
            )
            .await?,
            select_rollup_days: prepare(
                format!("SELECT day, covers, counts FROM {ks}.rollup_days WHERE partner_id = ? AND period = ? AND day >= ? AND day < ?"),
                Idempotent,
            )
            .await?,
            insert_rollup_day_sketch: prepare(
                format!("INSERT INTO {ks}.rollup_day_sketches (owner, event_type, period, day, sketch) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"),
                Idempotent,
            )
            .await?,
            select_rollup_day_sketches: prepare(
                format!("SELECT day, sketch FROM {ks}.rollup_day_sketches WHERE owner = ? AND event_type = ? AND period = ? AND day >= ? AND day < ?"),
                Idempotent,
            )
            .await?,
            delete_rollup_hour_parts: prepare(
                format!("DELETE FROM {ks}.rollup_hour_parts USING TIMESTAMP ? WHERE partner_id = ? AND period = ? AND hour = ? AND part >= ?"),
                Idempotent,
            )
            .await?,
            insert_rollup_hour_part: prepare(
                format!("INSERT INTO {ks}.rollup_hour_parts (partner_id, period, hour, part, parts, fold, counts) VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"),
                Idempotent,
            )
            .await?,
            select_rollup_hour_parts: prepare(
                format!("SELECT hour, part, parts, fold, counts FROM {ks}.rollup_hour_parts WHERE partner_id = ? AND period = ? AND hour >= ? AND hour < ?"),
                Idempotent,
            )
            .await?,
            delete_rollup_day_parts: prepare(
                format!("DELETE FROM {ks}.rollup_day_parts USING TIMESTAMP ? WHERE partner_id = ? AND period = ? AND day = ? AND part >= ?"),
                Idempotent,
            )
            .await?,
            insert_rollup_day_part: prepare(
                format!("INSERT INTO {ks}.rollup_day_parts (partner_id, period, day, part, parts, fold, counts) VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"),
                Idempotent,
            )
            .await?,
            select_rollup_day_parts: prepare(
                format!("SELECT day, part, parts, fold, counts FROM {ks}.rollup_day_parts WHERE partner_id = ? AND period = ? AND day >= ? AND day < ?"),
                Idempotent,
            )
            .await?,

            claim_partner_code: prepare(
                format!("INSERT INTO {ks}.partners_by_code (code, partner_id) VALUES (?, ?) IF NOT EXISTS"),
                NotIdempotent,
            )
            .await?,
            release_partner_code: prepare(
                format!("DELETE FROM {ks}.partners_by_code WHERE code = ? IF partner_id = ?"),
                NotIdempotent,
            )
            .await?,
            insert_partner: prepare(
                format!("INSERT INTO {ks}.partners (id, code, record) VALUES (?, ?, ?)"),
                Idempotent,
            )
            .await?,
            select_partner: prepare(
                format!("SELECT record FROM {ks}.partners WHERE id = ?"),
                Idempotent,
            )
            .await?,
            list_partner_ids: prepare(
                format!("SELECT partner_id FROM {ks}.partner_ids WHERE shard = 0 AND partner_id > ? LIMIT ?"),
                Idempotent,
            )
            .await?,
            insert_partner_id: prepare(
                format!("INSERT INTO {ks}.partner_ids (shard, partner_id) VALUES (0, ?)"),
                Idempotent,
            )
            .await?,

            claim_subsystem_code: prepare(
                format!("INSERT INTO {ks}.subsystems_by_partner_code (partner_id, code, subsystem_id) VALUES (?, ?, ?) IF NOT EXISTS"),
                NotIdempotent,
            )
            .await?,
            release_subsystem_code: prepare(
                format!("DELETE FROM {ks}.subsystems_by_partner_code WHERE partner_id = ? AND code = ? IF subsystem_id = ?"),
                NotIdempotent,
            )
            .await?,
            insert_subsystem: prepare(
                format!("INSERT INTO {ks}.subsystems (id, partner_id, code, record) VALUES (?, ?, ?, ?)"),
                Idempotent,
            )
            .await?,
            select_subsystem: prepare(
                format!("SELECT record FROM {ks}.subsystems WHERE id = ?"),
                Idempotent,
            )
            .await?,
            select_partner_id_by_code: prepare(
                format!("SELECT partner_id FROM {ks}.partners_by_code WHERE code = ?"),
                Idempotent,
            )
            .await?,
            select_subsystem_id_by_code: prepare(
                format!("SELECT subsystem_id FROM {ks}.subsystems_by_partner_code WHERE partner_id = ? AND code = ?"),
                Idempotent,
            )
            .await?,
            list_subsystem_ids: prepare(
                format!("SELECT subsystem_id FROM {ks}.subsystems_by_partner_code WHERE partner_id = ?"),
                Idempotent,
            )
            .await?,

            claim_api_key_id: prepare(
                format!("INSERT INTO {ks}.api_keys_by_key_id (key_id, api_key_id) VALUES (?, ?) IF NOT EXISTS"),
                NotIdempotent,
            )
            .await?,
            insert_api_key: prepare(
                format!("INSERT INTO {ks}.api_keys (id, partner_id, key_id, record) VALUES (?, ?, ?, ?)"),
                Idempotent,
            )
            .await?,
            insert_api_key_by_partner: prepare(
                format!("INSERT INTO {ks}.api_keys_by_partner (partner_id, api_key_id) VALUES (?, ?)"),
                Idempotent,
            )
            .await?,
            select_api_key: prepare(
                format!("SELECT record FROM {ks}.api_keys WHERE id = ?"),
                Idempotent,
            )
            .await?,
            select_api_key_by_key_id: prepare(
                format!("SELECT api_key_id FROM {ks}.api_keys_by_key_id WHERE key_id = ?"),
                Idempotent,
            )
            .await?,
            list_api_key_ids: prepare(
                format!("SELECT api_key_id FROM {ks}.api_keys_by_partner WHERE partner_id = ?"),
                Idempotent,
            )
            .await?,

            insert_schema: prepare(
                format!("INSERT INTO {ks}.event_schemas (owner, event_type, record) VALUES (?, ?, ?)"),
                Idempotent,
            )
            .await?,
            select_schema: prepare(
                format!("SELECT record FROM {ks}.event_schemas WHERE owner = ? AND event_type = ?"),
                Idempotent,
            )
            .await?,
            list_schemas: prepare(
                format!("SELECT record FROM {ks}.event_schemas WHERE owner = ?"),
                Idempotent,
            )
            .await?,
            delete_schema: prepare(
                format!("DELETE FROM {ks}.event_schemas WHERE owner = ? AND event_type = ? IF EXISTS"),
                NotIdempotent,
            )
            .await?,

            insert_event_type: prepare(
                format!("INSERT INTO {ks}.event_types_by_partner (partner_id, event_type) VALUES (?, ?)"),
                Idempotent,
            )
            .await?,
            select_event_types: prepare(
                format!("SELECT event_type FROM {ks}.event_types_by_partner WHERE partner_id = ?"),
                Idempotent,
            )
            .await?,

            ping: prepare(
                "SELECT release_version FROM system.local".to_string(),
                Idempotent,
            )
            .await
            .map_err(|error| StoreError::Unavailable(format!("ping: {error}")))?,
        })
    }
}

/// Prepares `cql`, marked idempotent (the driver may retry it) or not; a failure says
/// what is likely missing.
pub(super) async fn prepare_statement(
    session: &Session,
    cql: String,
    idempotent: bool,
) -> Result<PreparedStatement, StoreError> {
    let mut statement = session.prepare(cql).await.map_err(|error| {
        StoreError::Unavailable(format!(
            "cannot prepare a statement (are the tables there? run `volcanion migrate`): {error}"
        ))
    })?;
    statement.set_is_idempotent(idempotent);
    Ok(statement)
}

//! The prepared statements of breakdown cells (`cql/008_breakdowns.cql`, `rollups/
//! breakdowns*`) and of the enrichment backfill, kept apart from `statements` so each file
//! stays one screenful of one concern. All are plain reads and writes: idempotent.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::statements::prepare_statement;
use crate::store::StoreError;

pub struct BreakdownStatements {
    pub insert_fold: PreparedStatement,
    pub select_folds: PreparedStatement,
    pub clear_cells: PreparedStatement,
    pub insert_cell: PreparedStatement,
    pub select_cells: PreparedStatement,
    pub insert_part: PreparedStatement,
    pub delete_parts_from: PreparedStatement,
    pub select_parts: PreparedStatement,
    /// What is left of an event row's TTL, so a backfilled row expires with its event.
    pub select_event_ttl: PreparedStatement,
}

impl BreakdownStatements {
    pub async fn prepare(
        session: &Session,
        keyspace: &str,
    ) -> Result<BreakdownStatements, StoreError> {
        let ks = keyspace;
        let prepare = |cql: String| prepare_statement(session, cql, true);
        let key = "partner_id = ? AND grain = ? AND period = ?";
        let cell_key = "partner_id = ? AND grain = ? AND cell = ? AND period = ?";
        Ok(BreakdownStatements {
            insert_fold: prepare(format!(
                "INSERT INTO {ks}.rollup_breakdown_folds (partner_id, grain, period, hour, fold, covers, people) VALUES (?, ?, ?, ?, ?, ?, true) USING TIMESTAMP ? AND TTL ?"
            ))
            .await?,
            select_folds: prepare(format!(
                "SELECT hour, fold, covers, people FROM {ks}.rollup_breakdown_folds WHERE {key} AND hour >= ? AND hour < ?"
            ))
            .await?,
            clear_cells: prepare(format!(
                "DELETE FROM {ks}.rollup_breakdown_cells USING TIMESTAMP ? WHERE {key} AND hour = ?"
            ))
            .await?,
            insert_cell: prepare(format!(
                "INSERT INTO {ks}.rollup_breakdown_cells (partner_id, grain, period, hour, cell) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
            ))
            .await?,
            select_cells: prepare(format!(
                "SELECT hour, cell FROM {ks}.rollup_breakdown_cells WHERE {key} AND hour >= ? AND hour < ?"
            ))
            .await?,
            insert_part: prepare(format!(
                "INSERT INTO {ks}.rollup_breakdowns (partner_id, grain, cell, period, hour, part, parts, fold, value_table) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
            ))
            .await?,
            delete_parts_from: prepare(format!(
                "DELETE FROM {ks}.rollup_breakdowns USING TIMESTAMP ? WHERE {cell_key} AND hour = ? AND part >= ?"
            ))
            .await?,
            select_parts: prepare(format!(
                "SELECT hour, part, parts, fold, value_table FROM {ks}.rollup_breakdowns WHERE {cell_key} AND hour >= ? AND hour < ?"
            ))
            .await?,
            select_event_ttl: prepare(format!(
                "SELECT TTL(event_type) FROM {ks}.events_by_partner_day WHERE partner_id = ? AND day = ? AND bucket = ? AND event_time = ? AND event_id = ?"
            ))
            .await?,
        })
    }
}

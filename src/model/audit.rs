//! The audit log (API.md, "Data lifecycle"): who erased, purged, exported or changed the
//! retention of which partner's data, and when. Written by the use cases, read by the
//! admin; entries are never changed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum AuditAction {
    ErasureRequested,
    ErasureCompleted,
    PurgeRequested,
    Export,
    RetentionChanged,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub partner_id: Uuid,
    pub action: AuditAction,
    /// Who asked: `admin`, or `key:<keyId>` for a partner's key.
    pub actor: String,
    /// What was asked, as the request named it (an erasure's id and subject, an export's
    /// range and filters, a retention's old and new days).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl AuditEntry {
    pub fn new(
        partner_id: Uuid,
        action: AuditAction,
        actor: impl Into<String>,
        details: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            id: Uuid::now_v7(),
            at: Utc::now(),
            partner_id,
            action,
            actor: actor.into(),
            details,
        }
    }
}

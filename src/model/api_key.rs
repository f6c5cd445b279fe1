use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Every API key starts with this, then its public key id, `_`, and its secret.
pub const KEY_PREFIX: &str = "vt_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Ingest,
    Read,
}

/// A key as stored: public id, owner, permissions and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: Uuid,
    pub partner_id: Uuid,
    /// Public part of the key, used to find this row.
    pub key_id: String,
    pub name: Option<String>,
    pub scopes: Vec<Scope>,
    pub subsystem_id: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Set on the old key when it was rotated: the key that replaced it.
    pub replaced_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub secret_hash: SecretHash,
}

impl ApiKey {
    /// `vt_<keyId>`: what identifies the key in listings and logs, without its secret.
    pub fn key_prefix(&self) -> String {
        format!("{KEY_PREFIX}{}", self.key_id)
    }

    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Why this key can't be used at `now`, if it can't.
    pub fn unusable_reason(&self, now: DateTime<Utc>) -> Option<&'static str> {
        if self.revoked_at.is_some_and(|revoked| revoked <= now) {
            return Some("the API key has been revoked");
        }
        if self.expires_at.is_some_and(|expires| expires <= now) {
            return Some("the API key has expired");
        }
        None
    }
}

/// Salted PBKDF2-HMAC-SHA256 of a key's secret (computed and checked in `auth`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretHash {
    pub iterations: u32,
    /// Standard base64, no padding.
    pub salt: String,
    pub hash: String,
    /// 32 bits of a fast salted hash of the secret (standard base64, no padding): turns
    /// wrong secrets away without PBKDF2. Absent on keys made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
}

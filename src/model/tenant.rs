use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntityStatus {
    Active,
    Inactive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SubsystemType {
    Web,
    Ios,
    Android,
    Backend,
    Iot,
    Other,
}

/// A tenant: owns subsystems, API keys and events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Partner {
    pub id: Uuid,
    #[schema(value_type = String, pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub code: Code,
    pub name: String,
    pub email: Option<String>,
    pub contact_person: Option<String>,
    pub status: EntityStatus,
    pub rate_limit_per_minute: Option<u32>,
    pub retention_days: Option<u32>,
    /// Whether events keep the client's IP address (`context.ip`); off by default, so
    /// only the country derived from it is kept.
    #[serde(default)]
    pub store_client_ip: bool,
    /// The partner's own hosts, lowercase: a visit arriving from one of them has no
    /// referrer.
    #[serde(default)]
    pub own_hosts: Vec<String>,
    /// Top-level `properties` fields reports may break down and filter by (at most 20).
    #[serde(default)]
    pub dimensions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Partner {
    pub fn is_active(&self) -> bool {
        self.status == EntityStatus::Active
    }
}

/// One of a partner's sources of events: a web shop, an app, a backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subsystem {
    pub id: Uuid,
    pub partner_id: Uuid,
    #[schema(value_type = String, pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub code: Code,
    pub name: String,
    #[serde(rename = "type")]
    pub subsystem_type: SubsystemType,
    pub description: Option<String>,
    pub status: EntityStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Subsystem {
    pub fn is_active(&self) -> bool {
        self.status == EntityStatus::Active
    }
}

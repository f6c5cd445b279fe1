//! The records every layer shares, and the validated newtypes they are made of. Nothing
//! here does I/O or knows about HTTP or storage: `store/` depends on this and on nothing
//! above it, and the services (`auth/`, `tenants/`, `schemas/`, `ingest/`) add the rules.

mod api_key;
mod audit;
mod code;
mod enrichment;
mod erasure;
mod event;
mod json;
mod person_ids;
mod schema;
mod tenant;
#[cfg(test)]
pub(crate) mod test_support;

pub use api_key::{ApiKey, KEY_PREFIX, Scope, SecretHash};
pub use audit::{AuditAction, AuditEntry};
pub use code::Code;
pub use enrichment::{DeviceType, Enrichment};
pub use erasure::{Erasure, ErasureStatus, ErasureSubject};
pub use event::{Event, check_event_type};
pub use json::JsonObject;
pub use person_ids::PersonIds;
pub use schema::{EventSchema, SchemaMode, json_schema_document};
pub use tenant::{EntityStatus, Partner, Subsystem, SubsystemType};

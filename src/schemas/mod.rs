//! Event structures: JSON Schemas per event type (global or per partner), how they are
//! checked, and the registry that caches compiled validators for the ingest path.

mod registry;
mod validation;

pub use registry::{SchemaCheck, SchemaRegistry};
pub use validation::{CompiledSchema, MAX_ERRORS_PER_EVENT, Violation, compile};

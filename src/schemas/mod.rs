//! Event structures: JSON Schemas per event type (global or per partner), how they are
//! checked, and the registry that caches compiled validators for the ingest path.

mod model;

pub use model::{EventSchema, SchemaMode};

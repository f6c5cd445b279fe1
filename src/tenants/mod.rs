//! Partners (tenants) and their subsystems: the rules for their fields, and a cached
//! directory the request path uses to look them up. The records are in `model`.

mod dimensions;
mod directory;
mod drafts;
mod hosts;
mod suppressed;

pub use dimensions::{DimensionsDraft, MAX_DIMENSIONS};
pub use directory::{Directory, unshare};
pub use drafts::{PartnerChanges, PartnerDraft, SubsystemChanges, SubsystemDraft};
pub use hosts::MAX_OWN_HOSTS;
pub use suppressed::Suppressed;

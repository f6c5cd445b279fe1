//! Partners (tenants) and their subsystems: the records, the rules for their fields,
//! and a cached directory the request path uses to look them up.

mod directory;
mod model;

pub use directory::Directory;
pub use model::{
    Code, EntityStatus, Partner, PartnerChanges, PartnerDraft, Subsystem, SubsystemChanges,
    SubsystemDraft, SubsystemType,
};

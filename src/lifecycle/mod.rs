//! The data lifecycle's use cases (API.md, "Data lifecycle"): erasure jobs, requested by
//! the admin and run in the background (`runner`), resumed after a restart until done;
//! the retention sweeper (`sweeper`); and the audit log of erasures, exports and
//! retention changes (`audit`).

mod audit;
mod erasures;
mod runner;
mod sweeper;

pub use audit::{AuditLog, AuditPage};
pub use erasures::{ErasureRequest, Erasures};
pub use runner::{ErasureRunner, spawn_runner};
pub use sweeper::{Sweeper, spawn_sweeper};

//! The write path: admission (`admission`: replay guard, rate charge), the edge that
//! validates events (`event`), the pipeline that resolves and checks them and waits for
//! their acknowledgement (`pipeline`), the bounded queue with its receipts (`queue`) and
//! the batch writers that drain it (`writer`). `segment` translates Segment's messages
//! into the same drafts.

pub mod admission;
pub mod after_write;
pub mod event;
pub mod event_types;
pub mod pipeline;
pub mod queue;
pub mod segment;
pub mod writer;

pub use admission::{Admission, RateLimited, ReplayHeaders};
pub use pipeline::{AckPolicy, Ingestor, NotStored, Origin, Rejection};
pub use queue::{EnqueueError, IngestQueue};

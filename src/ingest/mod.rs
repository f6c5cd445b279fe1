//! The write path. `submission` is the use case: one request, from its credential to its
//! answer, for every wire format. It uses admission (`admission`: replay guard, rate
//! charge), the formats (`format`: one file per wire shape, each turning a body into event
//! drafts), the batch judge (`batch`), and the pipeline (`pipeline`: subsystem, the bound on
//! event types in `event_types`, event structure, then the bounded queue with its receipts
//! in `queue`, drained by the batch writers in `writer`, which run `after_write` once a
//! batch is stored). `rejection` says why events were not taken.

pub mod admission;
pub mod after_write;
pub mod batch;
pub mod event_types;
pub mod format;
pub mod pipeline;
pub mod queue;
pub mod rejection;
pub mod submission;
pub mod writer;

pub use admission::{Admission, RateLimited, ReplayHeaders};
pub use batch::{Acknowledged, Verdict};
pub use pipeline::{AckPolicy, Ingestor, Origin, Preparation};
pub use queue::{EnqueueError, IngestQueue};
pub use rejection::{NotStored, Rejection};
pub use submission::{Body, Refused, Request, Sender, Submission, Submitted};

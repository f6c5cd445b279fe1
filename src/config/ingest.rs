//! `[ingest]`: what a 202 promises, the queue's bounds, the writers, and event limits.

use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::render::{bytes, duration};
use super::{ConfigError, first_failure};

/// When ingestion answers 202.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Acknowledge {
    /// Once the request's events are in the store (durable).
    Stored,
    /// Once they are in the in-memory queue: lost if the process dies before a writer
    /// stores them.
    Queued,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// What a 202 promises: the events are stored, or only queued in memory.
    pub acknowledge: Acknowledge,
    /// How long a `stored` acknowledgement waits for the store before answering 503.
    #[serde(with = "duration")]
    pub ack_timeout: Duration,
    /// Events the in-memory queue holds before ingestion answers 503.
    pub queue_capacity: usize,
    /// Bytes the queued events may hold at most (they are freed once stored).
    #[serde(with = "bytes")]
    pub queue_max_bytes: ByteSize,
    pub writers: usize,
    /// Events per store write (a request's events are never split across writes).
    pub batch_size: usize,
    /// How long a writer waits for a batch to fill once its first event arrived.
    #[serde(with = "duration")]
    pub linger: Duration,
    pub max_batch_events: usize,
    #[serde(with = "bytes")]
    pub max_event_size: ByteSize,
    /// Event timestamps further ahead of the server clock are clamped to the receive time.
    #[serde(with = "duration")]
    pub max_clock_skew: Duration,
    /// Distinct event types a partner may send over its whole history; an event of a new
    /// type past it is refused (422 naming `eventType`), so one partner can't make its
    /// rollups (a row per type and hour) or report queries grow without bound.
    pub max_event_types_per_partner: usize,
    /// Upper bound on draining the queue at shutdown.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
}

impl IngestConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        first_failure([
            (
                self.queue_capacity == 0,
                "ingest.queue_capacity must be > 0, got 0".to_string(),
            ),
            (
                self.writers == 0,
                "ingest.writers must be > 0, got 0".to_string(),
            ),
            (
                self.ack_timeout.is_zero(),
                "ingest.ack_timeout must be > 0, got 0s".to_string(),
            ),
            (
                self.batch_size == 0,
                "ingest.batch_size must be > 0, got 0".to_string(),
            ),
            (
                self.max_batch_events == 0 || self.max_batch_events > self.queue_capacity,
                format!(
                    "ingest.max_batch_events must be in 1..=queue_capacity ({}), got {}",
                    self.queue_capacity, self.max_batch_events
                ),
            ),
            (
                self.max_event_types_per_partner == 0,
                "ingest.max_event_types_per_partner must be > 0, got 0".to_string(),
            ),
        ])
    }
}

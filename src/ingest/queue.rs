//! The bounded ingest queue between request handlers and batch writers. Handlers never
//! wait on it: a request's events go in all together or not at all, and a full queue is
//! reported at once so the caller can answer 503. It is bounded twice: by events, and by
//! the bytes those events hold (released once a writer has stored them), so large events
//! can't fill memory while the event count looks small.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Mutex, mpsc};

use crate::model::Event;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnqueueError {
    #[error("the ingest queue is full")]
    Full,
    #[error("the ingest queue is closed")]
    Closed,
}

/// The bytes held by queued events, against a maximum.
pub struct ByteBudget {
    used: AtomicUsize,
    max: usize,
}

impl ByteBudget {
    fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let total = used.checked_add(bytes)?;
                (total <= self.max).then_some(total)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// The handlers' side; the queue closes when the last clone is dropped.
#[derive(Clone)]
pub struct IngestQueue {
    sender: mpsc::Sender<Event>,
    capacity: usize,
    bytes: Arc<ByteBudget>,
}

/// The writers' side, shared: one writer at a time collects a batch, and gives its bytes
/// back once it is stored.
#[derive(Clone)]
pub struct QueueReceiver {
    pub receiver: Arc<Mutex<mpsc::Receiver<Event>>>,
    bytes: Arc<ByteBudget>,
}

impl QueueReceiver {
    /// Frees the budget `events` held: call once they are stored.
    pub fn stored(&self, events: &[Event]) {
        self.bytes
            .give_back(events.iter().map(Event::approximate_size).sum());
    }
}

pub fn bounded(capacity: usize, max_bytes: usize) -> (IngestQueue, QueueReceiver) {
    let (sender, receiver) = mpsc::channel(capacity);
    let bytes = Arc::new(ByteBudget {
        used: AtomicUsize::new(0),
        max: max_bytes,
    });
    (
        IngestQueue {
            sender,
            capacity,
            bytes: Arc::clone(&bytes),
        },
        QueueReceiver {
            receiver: Arc::new(Mutex::new(receiver)),
            bytes,
        },
    )
}

impl IngestQueue {
    pub fn try_enqueue(&self, events: Vec<Event>) -> Result<(), EnqueueError> {
        if events.is_empty() {
            return Ok(());
        }
        let bytes = events.iter().map(Event::approximate_size).sum();
        if !self.bytes.try_take(bytes) {
            return Err(EnqueueError::Full);
        }
        let permits = self
            .sender
            .try_reserve_many(events.len())
            .map_err(|error| {
                self.bytes.give_back(bytes);
                match error {
                    mpsc::error::TrySendError::Full(()) => EnqueueError::Full,
                    mpsc::error::TrySendError::Closed(()) => EnqueueError::Closed,
                }
            })?;
        for (permit, event) in permits.zip(events) {
            permit.send(event);
        }
        Ok(())
    }

    /// Bytes held by queued events (not yet stored).
    pub fn bytes(&self) -> usize {
        self.bytes.used()
    }

    pub fn depth(&self) -> usize {
        self.capacity - self.sender.capacity()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::sample_event;

    #[tokio::test]
    async fn a_request_that_does_not_fit_is_refused_whole() {
        let (queue, receiver) = bounded(3, 1 << 20);
        queue
            .try_enqueue(vec![sample_event("a"), sample_event("b")])
            .unwrap();
        assert_eq!(
            queue.try_enqueue(vec![sample_event("c"), sample_event("d")]),
            Err(EnqueueError::Full)
        );
        assert_eq!(queue.depth(), 2);
        queue.try_enqueue(vec![sample_event("c")]).unwrap();
        let mut received = Vec::new();
        receiver
            .receiver
            .lock()
            .await
            .recv_many(&mut received, 10)
            .await;
        let ids: Vec<_> = received
            .iter()
            .map(|event| event.event_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn the_queue_is_bounded_by_bytes_until_writers_store() {
        let event = sample_event("a");
        let (queue, receiver) = bounded(100, event.approximate_size() * 2);
        queue
            .try_enqueue(vec![event.clone(), event.clone()])
            .unwrap();
        assert_eq!(
            queue.try_enqueue(vec![event.clone()]),
            Err(EnqueueError::Full)
        );
        receiver.stored(std::slice::from_ref(&event));
        queue.try_enqueue(vec![event]).unwrap();
    }
}

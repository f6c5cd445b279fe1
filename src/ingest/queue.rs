//! The bounded ingest queue between request handlers and batch writers. Handlers never
//! wait on it: a request's events go in all together or not at all, and a full queue is
//! reported at once so the caller can answer 503.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};

use crate::model::Event;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnqueueError {
    #[error("the ingest queue is full")]
    Full,
    #[error("the ingest queue is closed")]
    Closed,
}

/// The handlers' side; the queue closes when the last clone is dropped.
#[derive(Clone)]
pub struct IngestQueue {
    sender: mpsc::Sender<Event>,
    capacity: usize,
}

/// The writers' side, shared: one writer at a time collects a batch.
pub type SharedReceiver = Arc<Mutex<mpsc::Receiver<Event>>>;

pub fn bounded(capacity: usize) -> (IngestQueue, SharedReceiver) {
    let (sender, receiver) = mpsc::channel(capacity);
    (
        IngestQueue { sender, capacity },
        Arc::new(Mutex::new(receiver)),
    )
}

impl IngestQueue {
    pub fn try_enqueue(&self, events: Vec<Event>) -> Result<(), EnqueueError> {
        if events.is_empty() {
            return Ok(());
        }
        let permits = self
            .sender
            .try_reserve_many(events.len())
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(()) => EnqueueError::Full,
                mpsc::error::TrySendError::Closed(()) => EnqueueError::Closed,
            })?;
        for (permit, event) in permits.zip(events) {
            permit.send(event);
        }
        Ok(())
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
        let (queue, receiver) = bounded(3);
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
        receiver.lock().await.recv_many(&mut received, 10).await;
        let ids: Vec<_> = received
            .iter()
            .map(|event| event.event_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }
}

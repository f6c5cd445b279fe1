//! The bounded ingest queue between request handlers and batch writers. A request's events
//! go in together or not at all, and a full queue is reported at once so the caller can
//! answer 503. It is bounded twice, by events and by the bytes those events hold, both
//! released only once a writer has stored them, so large events can't fill memory while
//! the event count looks small.
//!
//! A request may carry a receipt: the writer completes it once the request's events are in
//! the store, and that is what a durable 202 waits for. A request whose handler stopped
//! waiting before a writer took it (it answered 503, or the client went away) is dropped
//! unwritten, so a client's retry of it can't become a second copy.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::{Instant, timeout_at};

use crate::model::Event;
use crate::telemetry::TraceLink;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnqueueError {
    #[error("the ingest queue is full")]
    Full,
    #[error("the ingest queue is closed")]
    Closed,
}

/// An amount in use against a maximum (events or bytes).
struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl Budget {
    fn new(max: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            max,
        }
    }

    fn try_take(&self, amount: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let total = used.checked_add(amount)?;
                (total <= self.max).then_some(total)
            })
            .is_ok()
    }

    fn give_back(&self, amount: usize) {
        self.used.fetch_sub(amount, Ordering::AcqRel);
    }

    fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// What both sides share: the budgets, when the requests not yet stored arrived, and
/// whether the last store write failed.
struct Shared {
    events: Budget,
    bytes: Budget,
    /// Receive times of the requests queued and not yet stored (a multiset).
    unstored_since: SyncMutex<BTreeMap<DateTime<Utc>, usize>>,
    write_failing: AtomicBool,
    abandoned: AtomicUsize,
}

impl Shared {
    fn hold(&self, received_at: DateTime<Utc>) {
        *self
            .unstored_since
            .lock()
            .expect("not poisoned")
            .entry(received_at)
            .or_default() += 1;
    }

    fn release(&self, events: usize, bytes: usize, received: &[DateTime<Utc>]) {
        self.events.give_back(events);
        self.bytes.give_back(bytes);
        let mut unstored = self.unstored_since.lock().expect("not poisoned");
        for instant in received {
            if let Some(count) = unstored.get_mut(instant) {
                *count -= 1;
                if *count == 0 {
                    unstored.remove(instant);
                }
            }
        }
    }
}

/// When the oldest request still waiting to be stored arrived (none: all are stored).
#[derive(Clone)]
pub struct Unstored(Arc<Shared>);

impl Unstored {
    pub fn oldest(&self) -> Option<DateTime<Utc>> {
        self.0
            .unstored_since
            .lock()
            .expect("not poisoned")
            .keys()
            .next()
            .copied()
    }
}

/// One request's events on their way to the store.
struct Pending {
    events: Vec<Event>,
    bytes: usize,
    received_at: DateTime<Utc>,
    receipt: Option<oneshot::Sender<()>>,
    /// The span that queued them, for the batch write's trace to link to.
    link: Option<TraceLink>,
}

impl Pending {
    /// Whether the handler stopped waiting for this request's receipt.
    fn abandoned(&self) -> bool {
        self.receipt
            .as_ref()
            .is_some_and(oneshot::Sender::is_closed)
    }
}

/// Resolves once the request's events are in the store.
pub struct Receipt(oneshot::Receiver<()>);

/// Why a receipt did not arrive.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unconfirmed {
    #[error("the events were not stored within {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    #[error("the service stopped before the events were stored")]
    Stopped,
}

impl Receipt {
    /// Waits until the events are stored, at most `patience`. Giving up (or being dropped)
    /// before a writer took them means they will never be written.
    pub async fn stored_within(self, patience: Duration) -> Result<(), Unconfirmed> {
        match tokio::time::timeout(patience, self.0).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Unconfirmed::Stopped),
            Err(_) => Err(Unconfirmed::TimedOut(patience)),
        }
    }
}

/// The handlers' side; the queue closes when the last clone is dropped.
#[derive(Clone)]
pub struct IngestQueue {
    sender: mpsc::Sender<Pending>,
    shared: Arc<Shared>,
}

/// The writers' side, shared: one writer at a time collects a batch.
#[derive(Clone)]
pub struct QueueReceiver {
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    shared: Arc<Shared>,
}

/// When a writer stops collecting and writes.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// Events per store write; one request's events are never split, so a batch may
    /// hold more when a single request does.
    pub max_events: usize,
    /// How long to wait for more once the first request is in hand (0: take only what
    /// is already queued: while one write is under way the next batch gathers anyway).
    pub linger: Duration,
}

/// The events a writer stores together, with the receipts they complete.
pub struct Batch {
    /// Shared, so a store can hand them to its own thread without copying them.
    pub events: Arc<[Event]>,
    bytes: usize,
    received: Vec<DateTime<Utc>>,
    receipts: Vec<oneshot::Sender<()>>,
    links: Vec<TraceLink>,
}

impl Batch {
    /// The traced spans that queued this batch's events.
    pub fn links(&self) -> &[TraceLink] {
        &self.links
    }
}

pub fn bounded(capacity: usize, max_bytes: usize) -> (IngestQueue, QueueReceiver) {
    // Every request holds at least one event, so the event budget fills before the channel.
    let (sender, receiver) = mpsc::channel(capacity);
    let shared = Arc::new(Shared {
        events: Budget::new(capacity),
        bytes: Budget::new(max_bytes),
        unstored_since: SyncMutex::new(BTreeMap::new()),
        write_failing: AtomicBool::new(false),
        abandoned: AtomicUsize::new(0),
    });
    (
        IngestQueue {
            sender,
            shared: Arc::clone(&shared),
        },
        QueueReceiver {
            receiver: Arc::new(Mutex::new(receiver)),
            shared,
        },
    )
}

impl IngestQueue {
    /// Queues `events` with nothing to wait for (the in-memory acknowledgement).
    pub fn try_enqueue(&self, events: Vec<Event>) -> Result<(), EnqueueError> {
        self.push(events, None)
    }

    /// Queues `events` with a receipt that resolves once they are stored.
    pub fn try_enqueue_with_receipt(&self, events: Vec<Event>) -> Result<Receipt, EnqueueError> {
        let (sender, receiver) = oneshot::channel();
        self.push(events, Some(sender))?;
        Ok(Receipt(receiver))
    }

    fn push(
        &self,
        events: Vec<Event>,
        receipt: Option<oneshot::Sender<()>>,
    ) -> Result<(), EnqueueError> {
        if events.is_empty() {
            if let Some(receipt) = receipt {
                let _ = receipt.send(());
            }
            return Ok(());
        }
        let count = events.len();
        let bytes = events.iter().map(Event::approximate_size).sum();
        let received_at = events
            .iter()
            .map(|event| event.received_at)
            .min()
            .expect("not empty");
        if !self.shared.events.try_take(count) {
            return Err(EnqueueError::Full);
        }
        if !self.shared.bytes.try_take(bytes) {
            self.shared.events.give_back(count);
            return Err(EnqueueError::Full);
        }
        let pending = Pending {
            events,
            bytes,
            received_at,
            receipt,
            link: TraceLink::current(),
        };
        self.shared.hold(received_at);
        self.sender.try_send(pending).map_err(|error| {
            self.shared.release(count, bytes, &[received_at]);
            match error {
                mpsc::error::TrySendError::Full(_) => EnqueueError::Full,
                mpsc::error::TrySendError::Closed(_) => EnqueueError::Closed,
            }
        })
    }

    /// Events queued and not yet stored.
    pub fn depth(&self) -> usize {
        self.shared.events.used()
    }

    /// Bytes held by queued events (not yet stored).
    pub fn bytes(&self) -> usize {
        self.shared.bytes.used()
    }

    pub fn capacity(&self) -> usize {
        self.shared.events.max
    }

    /// Watches when the oldest unstored request arrived (without keeping the queue open).
    pub fn unstored(&self) -> Unstored {
        Unstored(Arc::clone(&self.shared))
    }

    /// Whether the last store write failed (and its retry has not yet succeeded).
    pub fn write_failing(&self) -> bool {
        self.shared.write_failing.load(Ordering::Acquire)
    }
}

impl QueueReceiver {
    /// Collects the next batch; `None` once the queue is closed and drained.
    pub async fn next_batch(&self, policy: BatchPolicy) -> Option<Batch> {
        let mut receiver = self.receiver.lock().await;
        let mut events = Vec::new();
        let mut batch = Batch {
            events: Arc::new([]),
            bytes: 0,
            received: Vec::new(),
            receipts: Vec::new(),
            links: Vec::new(),
        };
        loop {
            let pending = receiver.recv().await?;
            self.add(&mut batch, &mut events, pending);
            if !events.is_empty() {
                break;
            }
        }
        let deadline = Instant::now() + policy.linger;
        while events.len() < policy.max_events {
            // A deadline already passed still takes what is queued: `timeout_at` polls first.
            match timeout_at(deadline, receiver.recv()).await {
                Ok(Some(pending)) => self.add(&mut batch, &mut events, pending),
                Ok(None) | Err(_) => break,
            }
        }
        batch.events = events.into();
        Some(batch)
    }

    fn add(&self, batch: &mut Batch, events: &mut Vec<Event>, mut pending: Pending) {
        if pending.abandoned() {
            self.shared.abandoned.fetch_add(1, Ordering::Relaxed);
            self.shared
                .release(pending.events.len(), pending.bytes, &[pending.received_at]);
            return;
        }
        batch.bytes += pending.bytes;
        batch.received.push(pending.received_at);
        events.append(&mut pending.events);
        batch.receipts.extend(pending.receipt);
        batch.links.extend(pending.link);
    }

    /// The batch is in the store: frees what it held and completes its receipts.
    pub fn stored(&self, batch: Batch) {
        self.shared.write_failing.store(false, Ordering::Release);
        self.shared
            .release(batch.events.len(), batch.bytes, &batch.received);
        for receipt in batch.receipts {
            let _ = receipt.send(());
        }
    }

    /// A write failed and will be retried: durable ingestion refuses new events meanwhile.
    pub fn write_failed(&self) {
        self.shared.write_failing.store(true, Ordering::Release);
    }

    /// Requests dropped unwritten because their handler stopped waiting, since the start.
    pub fn abandoned(&self) -> usize {
        self.shared.abandoned.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::sample_event;

    const POLICY: BatchPolicy = BatchPolicy {
        max_events: 3,
        linger: Duration::from_millis(100),
    };

    fn ids(batch: &Batch) -> Vec<&str> {
        batch
            .events
            .iter()
            .map(|event| event.event_id.as_str())
            .collect()
    }

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
        let batch = receiver.next_batch(POLICY).await.unwrap();
        assert_eq!(ids(&batch), ["a", "b", "c"]);
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
        let batch = receiver.next_batch(POLICY).await.unwrap();
        assert_eq!(
            queue.try_enqueue(vec![event.clone()]),
            Err(EnqueueError::Full),
            "a batch being written still holds its bytes"
        );
        receiver.stored(batch);
        queue.try_enqueue(vec![event]).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_flushes_when_full_and_never_splits_a_request() {
        let (queue, receiver) = bounded(10, 1 << 20);
        queue
            .try_enqueue((0..2).map(|i| sample_event(&i.to_string())).collect())
            .unwrap();
        queue
            .try_enqueue((2..5).map(|i| sample_event(&i.to_string())).collect())
            .unwrap();
        queue.try_enqueue(vec![sample_event("5")]).unwrap();
        let first = receiver.next_batch(POLICY).await.unwrap();
        assert_eq!(ids(&first), ["0", "1", "2", "3", "4"]);
        let second = receiver.next_batch(POLICY).await.unwrap();
        assert_eq!(ids(&second), ["5"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_waits_for_the_linger_only() {
        let (queue, receiver) = bounded(10, 1 << 20);
        queue.try_enqueue(vec![sample_event("a")]).unwrap();
        let started = Instant::now();
        assert_eq!(receiver.next_batch(POLICY).await.unwrap().events.len(), 1);
        assert!(started.elapsed() >= POLICY.linger);
        let no_linger = BatchPolicy {
            linger: Duration::ZERO,
            ..POLICY
        };
        queue.try_enqueue(vec![sample_event("b")]).unwrap();
        queue.try_enqueue(vec![sample_event("c")]).unwrap();
        let started = Instant::now();
        assert_eq!(
            ids(&receiver.next_batch(no_linger).await.unwrap()),
            ["b", "c"]
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_flushes_at_once_then_ends() {
        let (queue, receiver) = bounded(10, 1 << 20);
        queue.try_enqueue(vec![sample_event("a")]).unwrap();
        drop(queue);
        let started = Instant::now();
        assert_eq!(receiver.next_batch(POLICY).await.unwrap().events.len(), 1);
        assert!(started.elapsed() < POLICY.linger);
        assert!(receiver.next_batch(POLICY).await.is_none());
    }

    #[tokio::test]
    async fn a_receipt_resolves_once_its_batch_is_stored() {
        let (queue, receiver) = bounded(10, 1 << 20);
        let receipt = queue
            .try_enqueue_with_receipt(vec![sample_event("a")])
            .unwrap();
        let batch = receiver.next_batch(POLICY).await.unwrap();
        receiver.stored(batch);
        assert_eq!(receipt.stored_within(Duration::from_secs(5)).await, Ok(()));
        assert_eq!(queue.depth(), 0);
        assert_eq!(queue.bytes(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_given_up_on_before_a_writer_took_it_is_never_written() {
        let (queue, receiver) = bounded(10, 1 << 20);
        let receipt = queue
            .try_enqueue_with_receipt(vec![sample_event("gone")])
            .unwrap();
        assert_eq!(
            receipt.stored_within(Duration::from_millis(10)).await,
            Err(Unconfirmed::TimedOut(Duration::from_millis(10)))
        );
        queue.try_enqueue(vec![sample_event("kept")]).unwrap();
        let batch = receiver.next_batch(POLICY).await.unwrap();
        assert_eq!(ids(&batch), ["kept"]);
        assert_eq!(receiver.abandoned(), 1);
        assert_eq!(queue.depth(), 1, "the abandoned event's budget came back");
    }

    #[tokio::test]
    async fn the_oldest_unstored_request_is_known_until_stored() {
        let (queue, receiver) = bounded(10, 1 << 20);
        let unstored = queue.unstored();
        assert_eq!(unstored.oldest(), None);
        let first = sample_event("a");
        let mut second = sample_event("b");
        second.received_at = first.received_at + chrono::Duration::seconds(1);
        queue.try_enqueue(vec![first.clone()]).unwrap();
        queue.try_enqueue(vec![second]).unwrap();
        assert_eq!(unstored.oldest(), Some(first.received_at));
        let batch = receiver.next_batch(POLICY).await.unwrap();
        receiver.stored(batch);
        assert_eq!(unstored.oldest(), None);
    }

    #[tokio::test]
    async fn a_receipt_whose_batch_is_dropped_reports_the_stop() {
        let (queue, receiver) = bounded(10, 1 << 20);
        let receipt = queue
            .try_enqueue_with_receipt(vec![sample_event("a")])
            .unwrap();
        drop(receiver.next_batch(POLICY).await);
        assert_eq!(
            receipt.stored_within(Duration::from_secs(5)).await,
            Err(Unconfirmed::Stopped)
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// One request: how many events, and whether its handler gives up before a writer
        /// takes it.
        fn requests() -> impl Strategy<Value = Vec<(usize, bool)>> {
            proptest::collection::vec((1usize..6, proptest::bool::weighted(0.2)), 1..40)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Whatever the requests and batch sizes, writers store every event of every
            /// request still waited for exactly once, in arrival order, never an abandoned
            /// one, and every budget comes back.
            #[test]
            fn writers_store_each_waited_for_event_once(requests in requests(), max_events in 1usize..12) {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
                runtime.block_on(async {
                    let (queue, receiver) = bounded(1_000, 1 << 24);
                    let policy = BatchPolicy { max_events, linger: Duration::ZERO };
                    let mut expected = Vec::new();
                    let mut receipts = Vec::new();
                    for (index, (size, abandoned)) in requests.iter().enumerate() {
                        let events: Vec<Event> = (0..*size).map(|i| sample_event(&format!("{index}-{i}"))).collect();
                        let receipt = queue.try_enqueue_with_receipt(events.clone()).unwrap();
                        if *abandoned {
                            drop(receipt);
                        } else {
                            expected.extend(events.into_iter().map(|event| event.event_id));
                            receipts.push(receipt);
                        }
                    }
                    let unstored = queue.unstored();
                    drop(queue);
                    let mut stored = Vec::new();
                    while let Some(batch) = receiver.next_batch(policy).await {
                        stored.extend(batch.events.iter().map(|event| event.event_id.clone()));
                        receiver.stored(batch);
                    }
                    prop_assert_eq!(&stored, &expected);
                    for receipt in receipts {
                        prop_assert_eq!(receipt.stored_within(Duration::from_secs(1)).await, Ok(()));
                    }
                    prop_assert_eq!(receiver.abandoned(), requests.iter().filter(|(_, gone)| *gone).count());
                    prop_assert_eq!(unstored.oldest(), None, "every request is released");
                    Ok(())
                })?;
            }
        }
    }
}

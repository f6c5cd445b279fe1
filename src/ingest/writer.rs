//! Batch writers: drain the queue into the store. A batch is what is queued when a writer
//! is free (plus whatever arrives within the linger), so many requests share one store
//! write: the group commit behind durable acknowledgement. A failed write is retried with
//! backoff until it succeeds; meanwhile durable ingestion answers 503, and no accepted
//! event is dropped. Writers end once the queue is closed and drained.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::ErrorChain;
use crate::ingest::after_write::AfterWrite;
use crate::ingest::queue::{BatchPolicy, QueueReceiver};
use crate::model::Event;
use crate::store::EventStore;
use crate::telemetry::Metrics;

const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Writes one batch, retrying with exponential backoff until the store takes it.
pub async fn write_with_retry(
    store: &dyn EventStore,
    batch: &Arc<[Event]>,
    receiver: &QueueReceiver,
    metrics: &Metrics,
) {
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        let started = Instant::now();
        match store.write_batch(Arc::clone(batch)).await {
            Ok(outcome) => {
                metrics
                    .batch_write_duration
                    .observe(started.elapsed().as_secs_f64());
                metrics.batch_size.observe(batch.len() as f64);
                metrics.events_stored.inc_by(outcome.inserted as u64);
                metrics.events_duplicate.inc_by(outcome.duplicates as u64);
                return;
            }
            Err(error) => {
                receiver.write_failed();
                metrics
                    .store_errors
                    .with_label_values(&["write_events"])
                    .inc();
                tracing::warn!(error = %ErrorChain(&error), events = batch.len(), retry_in_ms = delay.as_millis() as u64, "batch write failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
}

/// Starts `count` writers; each ends once the queue is closed and empty. `after_write`
/// sees every stored batch before its receipts complete.
pub fn spawn_writers(
    count: usize,
    receiver: QueueReceiver,
    store: Arc<dyn EventStore>,
    policy: BatchPolicy,
    metrics: Arc<Metrics>,
    after_write: Arc<AfterWrite>,
) -> Vec<JoinHandle<()>> {
    (0..count)
        .map(|_| {
            let receiver = receiver.clone();
            let store = Arc::clone(&store);
            let metrics = Arc::clone(&metrics);
            let after_write = Arc::clone(&after_write);
            tokio::spawn(async move {
                while let Some(batch) = receiver.next_batch(policy).await {
                    // One write serves many requests: linked to each, the child of none.
                    let span = tracing::info_span!(
                        "batch_write",
                        otel.kind = "internal",
                        events = batch.events.len(),
                    );
                    for link in batch.links() {
                        link.attach_to(&span);
                    }
                    write_with_retry(store.as_ref(), &batch.events, &receiver, &metrics)
                        .instrument(span)
                        .await;
                    after_write.batch_stored(&batch.events).await;
                    receiver.stored(batch);
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::queue::bounded;
    use crate::model::test_support::sample_event;
    use crate::redis::InvalidationBus;
    use crate::store::{EventPage, EventQuery, StoreError, WriteOutcome};
    use async_trait::async_trait;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const POLICY: BatchPolicy = BatchPolicy {
        max_events: 3,
        linger: Duration::from_millis(100),
    };

    /// Fails the first `failures` writes, then records what it is given.
    #[derive(Default)]
    struct FlakyStore {
        failures: AtomicUsize,
        written: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl EventStore for FlakyStore {
        async fn write_events(&self, events: &[Event]) -> Result<WriteOutcome, StoreError> {
            if self.failures.load(Ordering::SeqCst) > 0 {
                self.failures.fetch_sub(1, Ordering::SeqCst);
                return Err(StoreError::Unavailable("down".into()));
            }
            self.written
                .lock()
                .unwrap()
                .extend(events.iter().map(|event| event.event_id.clone()));
            Ok(WriteOutcome {
                inserted: events.len(),
                duplicates: 0,
            })
        }

        async fn query_events(&self, _query: &EventQuery) -> Result<EventPage, StoreError> {
            unreachable!("writers never read")
        }

        async fn export_page(
            &self,
            _query: &crate::store::ExportQuery,
        ) -> Result<crate::store::ExportPage, StoreError> {
            unreachable!("writers never read")
        }

        async fn backfill_enrichment(
            &self,
            _partner: uuid::Uuid,
            _from: crate::rollups::Hour,
            _to: crate::rollups::Hour,
            _enrich: &crate::store::EnrichStored<'_>,
        ) -> Result<u64, StoreError> {
            unreachable!("writers never backfill")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_a_failed_batch_until_the_store_takes_it() {
        let store = FlakyStore::default();
        store.failures.store(4, Ordering::SeqCst);
        let metrics = Metrics::new();
        let (queue, receiver) = bounded(10, 1 << 20);
        queue
            .try_enqueue(vec![sample_event("a"), sample_event("b")])
            .unwrap();
        let batch = receiver.next_batch(POLICY).await.unwrap();
        write_with_retry(&store, &batch.events, &receiver, &metrics).await;
        assert!(
            queue.write_failing(),
            "failing until the batch is marked stored"
        );
        receiver.stored(batch);
        assert!(!queue.write_failing());
        assert_eq!(*store.written.lock().unwrap(), ["a", "b"]);
        assert_eq!(
            metrics
                .store_errors
                .with_label_values(&["write_events"])
                .get(),
            4
        );
    }

    #[tokio::test(start_paused = true)]
    async fn writers_drain_everything_queued_before_close() {
        let store = Arc::new(FlakyStore::default());
        store.failures.store(2, Ordering::SeqCst);
        let (queue, receiver) = bounded(100, 1 << 20);
        let handles = spawn_writers(
            2,
            receiver,
            store.clone(),
            POLICY,
            Arc::new(Metrics::new()),
            Arc::new(AfterWrite::new(InvalidationBus::new(
                None,
                Arc::new(|_| {}),
            ))),
        );
        queue
            .try_enqueue((0..50).map(|i| sample_event(&i.to_string())).collect())
            .unwrap();
        drop(queue);
        for handle in handles {
            handle.await.unwrap();
        }
        let mut written = store.written.lock().unwrap().clone();
        written.sort_by_key(|id| id.parse::<u32>().unwrap());
        assert_eq!(written, (0..50).map(|i| i.to_string()).collect::<Vec<_>>());
    }
}

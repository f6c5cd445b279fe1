//! How many reports one instance computes at once. A cold report over a long range reads
//! many rollups and raw hours; without a bound, a burst of them (a dashboard opened by
//! many people, a script) takes every core and the store from everything else. A report
//! waits briefly for a slot, then is refused with `503` + `Retry-After` (a cached answer
//! needs no slot).

use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

pub struct ComputeSlots {
    slots: Semaphore,
    max_wait: Duration,
}

/// Every slot stayed taken for the whole wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllSlotsTaken;

impl ComputeSlots {
    pub fn new(max_concurrent: usize, max_wait: Duration) -> ComputeSlots {
        ComputeSlots {
            slots: Semaphore::new(max_concurrent),
            max_wait,
        }
    }

    /// A slot, held until the permit is dropped; waits at most `max_wait` for one.
    pub async fn enter(&self) -> Result<SemaphorePermit<'_>, AllSlotsTaken> {
        match tokio::time::timeout(self.max_wait, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a timeout is the only refusal.
            Ok(Err(_)) | Err(_) => Err(AllSlotsTaken),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_report_past_the_bound_is_refused_after_the_wait() {
        let slots = ComputeSlots::new(1, Duration::from_secs(1));
        let first = slots.enter().await.unwrap();
        assert_eq!(slots.enter().await.err(), Some(AllSlotsTaken));
        drop(first);
        assert!(slots.enter().await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_freed_within_the_wait_is_taken() {
        let slots = std::sync::Arc::new(ComputeSlots::new(1, Duration::from_secs(1)));
        let first = slots.enter().await.unwrap();
        let waiting = tokio::spawn({
            let slots = std::sync::Arc::clone(&slots);
            async move { slots.enter().await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(first);
        assert_eq!(waiting.await.unwrap(), Ok(()));
    }
}

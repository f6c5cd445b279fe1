//! The erasure runner: every instance runs one. It takes the unfinished erasures at start
//! (a job a crash interrupted is resumed), when a request wakes it, and every few minutes
//! (a job another instance took and lost). A job:
//! 1. finds the hours holding the subject's events from people's postings (and the raw
//!    events of the hours not folded yet), as a person's lookup does;
//! 2. erases them a UTC day at a time (`LifecycleStore::erase_hours`: deletes, recounts,
//!    adds to the receipt);
//! 3. forgets the person's joins, drops the partner's cached reports everywhere, and
//!    records the receipt (`done`) and an audit entry.
//!
//! Every step can be repeated: a resumed job finds only what is left. Two instances
//! running the same job only repeat work.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::audit::AuditLog;
use crate::model::{AuditAction, Erasure, ErasureStatus, ErasureSubject};
use crate::redis::{Invalidation, InvalidationBus};
use crate::reports::ReportService;
use crate::rollups::Hour;
use crate::store::Store;

/// How often unfinished jobs are looked for without a wake-up.
const RESCAN: Duration = Duration::from_secs(300);
/// How far past now a purge sweeps: ingestion clamps event times to its clock skew.
const PURGE_MARGIN_DAYS: i64 = 7;
/// Rounds a job may fail in a row (the store down, say) before it is marked `failed`.
const MAX_FAILED_ROUNDS: u32 = 5;

pub struct ErasureRunner {
    store: Arc<dyn Store>,
    reports: Arc<ReportService>,
    invalidations: InvalidationBus,
    wake: Arc<Notify>,
    audit: AuditLog,
}

impl ErasureRunner {
    pub fn new(
        store: Arc<dyn Store>,
        reports: Arc<ReportService>,
        invalidations: InvalidationBus,
        wake: Arc<Notify>,
    ) -> ErasureRunner {
        ErasureRunner {
            audit: AuditLog::new(Arc::clone(&store)),
            store,
            reports,
            invalidations,
            wake,
        }
    }
}

pub fn spawn_runner(runner: ErasureRunner) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            runner.run_unfinished().await;
            tokio::select! {
                () = runner.wake.notified() => {}
                () = tokio::time::sleep(RESCAN) => {}
            }
        }
    })
}

impl ErasureRunner {
    /// Runs every unfinished job once; a job that fails is retried next round.
    pub async fn run_unfinished(&self) {
        let unfinished = match self.store.unfinished_erasures().await {
            Ok(unfinished) => unfinished,
            Err(error) => {
                tracing::warn!(%error, "cannot list unfinished erasures; retrying later");
                return;
            }
        };
        for erasure in unfinished {
            let (partner, id) = (erasure.partner_id, erasure.id);
            if let Err(error) = self.run(erasure).await {
                tracing::warn!(%error, partner_id = %partner, erasure_id = %id, "an erasure round failed");
                self.count_failure(&error.to_string(), partner, id).await;
            }
        }
    }

    async fn count_failure(&self, reason: &str, partner: uuid::Uuid, id: uuid::Uuid) {
        let Ok(Some(mut erasure)) = self.store.erasure(partner, id).await else {
            return;
        };
        erasure.failed_rounds += 1;
        if erasure.failed_rounds >= MAX_FAILED_ROUNDS {
            erasure.status = ErasureStatus::Failed;
            erasure.error = Some(reason.to_string());
            erasure.completed_at = Some(Utc::now());
        }
        if let Err(error) = self.store.put_erasure(&erasure).await {
            tracing::warn!(%error, "cannot record an erasure's failed round");
        }
    }

    /// Runs one job to its end.
    pub async fn run(&self, erasure: Erasure) -> Result<(), anyhow::Error> {
        let (partner, id) = (erasure.partner_id, erasure.id);
        let mut erasure = self.reload(erasure).await?;
        if let ErasureSubject::UserId(user) = &erasure.subject {
            // Joins recorded since the request belong to the person too.
            let joined = self.store.anonymous_ids_of(partner, user.clone()).await?;
            erasure.anonymous_ids.extend(joined);
        }
        erasure.status = ErasureStatus::Running;
        self.store.put_erasure(&erasure).await?;
        match &erasure.subject {
            ErasureSubject::UserId(user) => {
                self.erase_people(&erasure, std::slice::from_ref(user))
                    .await?;
            }
            ErasureSubject::AnonymousId(anonymous) => {
                // Its events are posted under whoever they count as: the id itself, the
                // user it is joined to, the users of its conflicts.
                let mut people = vec![anonymous.clone()];
                let seen_with = self
                    .store
                    .users_of_anonymous(partner, anonymous.clone())
                    .await?;
                people.extend(seen_with);
                self.erase_people(&erasure, &people).await?;
            }
            ErasureSubject::PartnerId(_) => self.purge(&erasure).await?,
        }
        self.store.forget_person(&erasure).await?;
        self.invalidations
            .publish(Invalidation::LateEvents(partner))
            .await;
        let mut done = self.reload(erasure).await?;
        done.status = ErasureStatus::Done;
        done.completed_at = Some(Utc::now());
        done.failed_rounds = 0;
        // Logged before the receipt is: whoever sees `done` finds it in the log.
        let details = serde_json::json!({
            "erasureId": id,
            "eventsDeleted": done.events_deleted,
            "hoursRecounted": done.hours_recounted,
        });
        self.audit
            .record(partner, AuditAction::ErasureCompleted, "admin", details)
            .await?;
        self.store.put_erasure(&done).await?;
        tracing::info!(partner_id = %partner, erasure_id = %id, events = done.events_deleted, hours = done.hours_recounted, "erasure done");
        Ok(())
    }

    /// Erases the events of `people` (as postings name them) the erasure covers, a day's
    /// hours at a time; each step adds to the receipt.
    async fn erase_people(&self, erasure: &Erasure, people: &[String]) -> anyhow::Result<()> {
        let hours = self
            .reports
            .hours_of_people(erasure.partner_id, people)
            .await?;
        let mut days: BTreeMap<Hour, Vec<Hour>> = BTreeMap::new();
        for hour in hours {
            days.entry(hour.day()).or_default().push(hour);
        }
        for hours in days.values() {
            self.store.erase_hours(erasure, hours).await?;
        }
        Ok(())
    }

    /// Sweeps every event of a purged partner, whatever its time (a clock's skew past now
    /// included), then adds what it deleted to the receipt.
    async fn purge(&self, erasure: &Erasure) -> anyhow::Result<()> {
        let beyond_any_event = Utc::now() + chrono::Duration::days(PURGE_MARGIN_DAYS);
        let swept = self
            .store
            .sweep_expired(erasure.partner_id, beyond_any_event)
            .await?;
        let mut record = self.reload(erasure.clone()).await?;
        record.events_deleted += swept.events;
        record.hours_recounted += swept.hours;
        self.store.put_erasure(&record).await?;
        Ok(())
    }

    /// The job as stored now (its receipt is added to by each erased day).
    async fn reload(&self, erasure: Erasure) -> Result<Erasure, anyhow::Error> {
        Ok(self
            .store
            .erasure(erasure.partner_id, erasure.id)
            .await?
            .unwrap_or(erasure))
    }
}

//! Erasure requests (admin): checked, recorded as a pending job, written to the audit log,
//! and handed to the runner. With `suppress`, every instance drops the subject's new
//! events from then on (the suppression caches are dropped everywhere at once).

use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::Notify;
use uuid::Uuid;

use super::audit::AuditLog;
use crate::error::{Failure, FieldErrors, Refusal};
use crate::model::{AuditAction, EntityStatus, Erasure, ErasureSubject};
use crate::redis::{Invalidation, InvalidationBus};
use crate::store::Store;

/// The longest id an erasure names (ids are kept as sent; this bounds the request).
const MAX_ID_CHARS: usize = 1_000;

/// `POST /partners/{id}/erasures` body: exactly one of `userId` and `anonymousId`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErasureRequest {
    /// Every event whose person is this user, joined anonymous ids included.
    pub user_id: Option<String>,
    /// Every event carrying this anonymous id.
    pub anonymous_id: Option<String>,
    /// Drop the subject's new events from now on (default `false`).
    pub suppress: Option<bool>,
}

impl ErasureRequest {
    fn subject(&self) -> Result<ErasureSubject, FieldErrors> {
        let check = |field: &str, id: &str| {
            if id.is_empty() || id.chars().count() > MAX_ID_CHARS {
                return Err(FieldErrors::one(
                    field,
                    format!("must be 1 to {MAX_ID_CHARS} characters"),
                ));
            }
            Ok(())
        };
        match (&self.user_id, &self.anonymous_id) {
            (Some(user), None) => {
                check("userId", user)?;
                Ok(ErasureSubject::UserId(user.clone()))
            }
            (None, Some(anonymous)) => {
                check("anonymousId", anonymous)?;
                Ok(ErasureSubject::AnonymousId(anonymous.clone()))
            }
            _ => Err(FieldErrors::one(
                "userId",
                "give exactly one of userId and anonymousId",
            )),
        }
    }
}

pub struct Erasures {
    store: Arc<dyn Store>,
    audit: AuditLog,
    invalidations: InvalidationBus,
    wake: Arc<Notify>,
}

impl Erasures {
    pub fn new(
        store: Arc<dyn Store>,
        invalidations: InvalidationBus,
        wake: Arc<Notify>,
    ) -> Erasures {
        Erasures {
            audit: AuditLog::new(Arc::clone(&store)),
            store,
            invalidations,
            wake,
        }
    }

    /// Records a pending erasure and wakes the runner; a repeat of one not finished yet
    /// answers that one, as it was asked.
    pub async fn request(
        &self,
        partner: Uuid,
        request: ErasureRequest,
    ) -> Result<Erasure, Failure> {
        let subject = request.subject()?;
        let suppress = request.suppress.unwrap_or(false);
        self.partner_exists(partner).await?;
        let running = self
            .store
            .erasures(partner)
            .await?
            .into_iter()
            .find(|erasure| !erasure.status.is_finished() && erasure.subject == subject);
        if let Some(running) = running {
            return Ok(running);
        }
        let mut erasure = Erasure::new(partner, subject, suppress);
        if let ErasureSubject::UserId(user) = &erasure.subject {
            let joined = self.store.anonymous_ids_of(partner, user.clone()).await?;
            erasure.anonymous_ids = joined.into_iter().collect();
        }
        let details = serde_json::json!({
            "erasureId": erasure.id,
            "subject": erasure.subject,
            "suppress": erasure.suppress,
        });
        self.audit
            .record(partner, AuditAction::ErasureRequested, "admin", details)
            .await?;
        self.store.put_erasure(&erasure).await?;
        if erasure.suppress {
            // Each instance's suppressions are cached with the directory's records.
            self.invalidations.publish(Invalidation::Identities).await;
        }
        self.wake.notify_one();
        tracing::info!(partner_id = %partner, erasure_id = %erasure.id, "erasure requested");
        Ok(erasure)
    }

    /// Deactivates the partner (its keys stop at once) and records a job erasing all its
    /// data; a repeat answers the purge not finished yet.
    pub async fn purge(&self, partner: Uuid) -> Result<Erasure, Failure> {
        let Some(mut record) = self.store.partner(partner).await? else {
            return Err(Refusal::NotFound(format!("no partner with id '{partner}'")).into());
        };
        let subject = ErasureSubject::PartnerId(partner);
        let erasures = self.store.erasures(partner).await?;
        if let Some(running) = erasures
            .into_iter()
            .find(|erasure| !erasure.status.is_finished() && erasure.subject == subject)
        {
            return Ok(running);
        }
        let erasure = Erasure::new(partner, subject, false);
        let details = serde_json::json!({"erasureId": erasure.id, "code": record.code.as_str()});
        self.audit
            .record(partner, AuditAction::PurgeRequested, "admin", details)
            .await?;
        // Its contact details go with its data; the record stays, inactive, so the job
        // and the audit log still name it.
        record.status = EntityStatus::Inactive;
        record.email = None;
        record.contact_person = None;
        record.updated_at = chrono::Utc::now();
        self.store.update_partner(&record).await?;
        self.invalidations.publish(Invalidation::Identities).await;
        self.store.put_erasure(&erasure).await?;
        self.wake.notify_one();
        tracing::info!(partner_id = %partner, erasure_id = %erasure.id, "purge requested");
        Ok(erasure)
    }

    pub async fn get(&self, partner: Uuid, id: Uuid) -> Result<Erasure, Failure> {
        self.partner_exists(partner).await?;
        self.store
            .erasure(partner, id)
            .await?
            .ok_or_else(|| Refusal::NotFound(format!("no erasure with id '{id}'")).into())
    }

    /// The partner's erasures, oldest first.
    pub async fn list(&self, partner: Uuid) -> Result<Vec<Erasure>, Failure> {
        self.partner_exists(partner).await?;
        let mut erasures = self.store.erasures(partner).await?;
        erasures.sort_by_key(|erasure| erasure.requested_at);
        Ok(erasures)
    }

    async fn partner_exists(&self, partner: Uuid) -> Result<(), Failure> {
        match self.store.partner(partner).await? {
            Some(_) => Ok(()),
            None => Err(Refusal::NotFound(format!("no partner with id '{partner}'")).into()),
        }
    }
}

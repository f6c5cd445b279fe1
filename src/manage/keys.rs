use chrono::Utc;
use uuid::Uuid;

use super::{Management, found};
use crate::auth::{GeneratedKey, KeyDraft, RotateRequest, generate, rotate};
use crate::error::{Failure, InternalError, Refusal};
use crate::model::ApiKey;
use crate::redis::Invalidation;

/// A key as stored, and its clear text: shown to the caller once, never stored.
pub struct IssuedKey {
    pub key: ApiKey,
    pub clear: String,
}

impl Management {
    pub async fn create_key(
        &self,
        partner_id: Uuid,
        draft: KeyDraft,
    ) -> Result<IssuedKey, Failure> {
        let partner = self.partner(partner_id).await?;
        let subsystem_belongs = match draft.subsystem_id {
            None => true,
            Some(subsystem_id) => self
                .store
                .subsystem(subsystem_id)
                .await?
                .is_some_and(|subsystem| subsystem.partner_id == partner.id),
        };
        let now = Utc::now();
        let checked = draft.check(now, subsystem_belongs)?;
        let generated = self.generate_key().await?;
        let key = checked.into_key(partner.id, &generated, now);
        self.store.insert_api_key(&key).await?;
        tracing::info!(api_key_id = %key.id, key_id = key.key_id.as_str(), partner_id = %partner.id, "api key created");
        Ok(IssuedKey {
            key,
            clear: generated.clear,
        })
    }

    pub async fn keys(&self, partner_id: Uuid) -> Result<Vec<ApiKey>, Failure> {
        let partner = self.partner(partner_id).await?;
        Ok(self.store.api_keys(partner.id).await?)
    }

    /// Issues a successor with the same partner, scopes and subsystem; the old key keeps
    /// working for the grace period and then stops.
    pub async fn rotate_key(&self, id: Uuid, request: RotateRequest) -> Result<IssuedKey, Failure> {
        let old = self.key(id).await?;
        let now = Utc::now();
        if let Some(reason) = old.unusable_reason(now) {
            return Err(Refusal::Conflict(format!("cannot rotate: {reason}")).into());
        }
        let generated = self.generate_key().await?;
        let rotation = rotate(&old, &generated, request.grace(), now);
        self.store.insert_api_key(&rotation.successor).await?;
        self.store.update_api_key(&rotation.retired).await?;
        self.invalidate(Invalidation::Identities).await;
        let successor = &rotation.successor;
        tracing::info!(api_key_id = %old.id, key_id = old.key_id.as_str(), new_api_key_id = %successor.id, new_key_id = successor.key_id.as_str(), grace_seconds = request.grace().num_seconds(), "api key rotated");
        Ok(IssuedKey {
            key: rotation.successor,
            clear: generated.clear,
        })
    }

    /// Revoked at once here, and on other instances as soon as they hear of it.
    pub async fn revoke_key(&self, id: Uuid) -> Result<(), Failure> {
        let mut key = self.key(id).await?;
        if key.revoked_at.is_none() {
            key.revoked_at = Some(Utc::now());
            self.store.update_api_key(&key).await?;
            self.invalidate(Invalidation::Identities).await;
            tracing::info!(api_key_id = %key.id, key_id = key.key_id.as_str(), "api key revoked");
        }
        Ok(())
    }

    async fn key(&self, id: Uuid) -> Result<ApiKey, Failure> {
        found(self.store.api_key(id).await?, "API key", id)
    }

    /// PBKDF2 is deliberately slow: generate off the async threads.
    async fn generate_key(&self) -> Result<GeneratedKey, Failure> {
        let iterations = self.pbkdf2_iterations;
        tokio::task::spawn_blocking(move || generate(iterations))
            .await
            .map_err(|error| InternalError(format!("key generation failed: {error}")).into())
    }
}

use chrono::Utc;
use uuid::Uuid;

use super::{Management, found};
use crate::error::Failure;
use crate::model::{EntityStatus, Subsystem};
use crate::redis::Invalidation;
use crate::tenants::{SubsystemChanges, SubsystemDraft};

impl Management {
    pub async fn create_subsystem(
        &self,
        partner_id: Uuid,
        draft: SubsystemDraft,
    ) -> Result<Subsystem, Failure> {
        let partner = self.partner(partner_id).await?;
        let subsystem = draft.into_subsystem(partner.id, Utc::now())?;
        self.store.insert_subsystem(&subsystem).await?;
        // A lookup of this code may have been cached as "no such subsystem".
        self.invalidate(Invalidation::Identities).await;
        tracing::info!(subsystem_id = %subsystem.id, partner_id = %partner.id, "subsystem created");
        Ok(subsystem)
    }

    pub async fn subsystem(&self, id: Uuid) -> Result<Subsystem, Failure> {
        found(self.store.subsystem(id).await?, "subsystem", id)
    }

    pub async fn subsystems(&self, partner_id: Uuid) -> Result<Vec<Subsystem>, Failure> {
        let partner = self.partner(partner_id).await?;
        Ok(self.store.subsystems(partner.id).await?)
    }

    pub async fn update_subsystem(
        &self,
        id: Uuid,
        changes: SubsystemChanges,
    ) -> Result<Subsystem, Failure> {
        let subsystem = self.subsystem(id).await?;
        let updated = changes.apply(&subsystem, Utc::now())?;
        self.store.update_subsystem(&updated).await?;
        self.invalidate(Invalidation::Identities).await;
        Ok(updated)
    }

    /// Events for it are refused and keys pinned to it stop working.
    pub async fn deactivate_subsystem(&self, id: Uuid) -> Result<(), Failure> {
        let subsystem = self.subsystem(id).await?;
        if subsystem.is_active() {
            let inactive = SubsystemChanges {
                status: Some(EntityStatus::Inactive),
                ..SubsystemChanges::default()
            };
            self.update_subsystem(id, inactive).await?;
            tracing::info!(subsystem_id = %id, "subsystem deactivated");
        }
        Ok(())
    }
}

use chrono::Utc;
use uuid::Uuid;

use super::{Management, found};
use crate::error::Failure;
use crate::model::{AuditAction, AuditEntry, EntityStatus, Partner};
use crate::redis::Invalidation;
use crate::tenants::{DimensionsDraft, PartnerChanges, PartnerDraft};

impl Management {
    pub async fn create_partner(&self, draft: PartnerDraft) -> Result<Partner, Failure> {
        let partner = draft.into_partner(Utc::now())?;
        self.store.insert_partner(&partner).await?;
        tracing::info!(partner_id = %partner.id, code = partner.code.as_str(), "partner created");
        Ok(partner)
    }

    pub async fn partner(&self, id: Uuid) -> Result<Partner, Failure> {
        found(self.store.partner(id).await?, "partner", id)
    }

    /// The partner with this code, if any (lets scripts find what they created before).
    pub async fn partner_by_code(&self, code: &str) -> Result<Option<Partner>, Failure> {
        Ok(self.store.partner_by_code(code).await?)
    }

    /// Ordered by id (creation time); `after` is the last id of the previous page.
    pub async fn partners(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Partner>, Failure> {
        Ok(self.store.partners(after, limit).await?)
    }

    pub async fn update_partner(
        &self,
        id: Uuid,
        changes: PartnerChanges,
    ) -> Result<Partner, Failure> {
        let partner = self.partner(id).await?;
        let updated = changes.apply(&partner, Utc::now())?;
        if updated.retention_days != partner.retention_days {
            // Written first: a change the log cannot show is not made.
            let details = serde_json::json!({
                "retentionDays": {"from": partner.retention_days, "to": updated.retention_days},
            });
            let entry = AuditEntry::new(id, AuditAction::RetentionChanged, "admin", details);
            self.store.append_audit(&entry).await?;
        }
        self.store.update_partner(&updated).await?;
        self.invalidate(Invalidation::Identities).await;
        Ok(updated)
    }

    /// Replaces the properties the partner's reports may break down by. Events stored
    /// before are counted by them once `rollups rebuild` runs.
    pub async fn declare_dimensions(
        &self,
        id: Uuid,
        draft: DimensionsDraft,
    ) -> Result<Partner, Failure> {
        let mut partner = self.partner(id).await?;
        partner.dimensions = draft.into_names()?;
        partner.updated_at = Utc::now();
        self.store.update_partner(&partner).await?;
        self.invalidate(Invalidation::Identities).await;
        tracing::info!(partner_id = %id, dimensions = partner.dimensions.len(), "dimensions declared");
        Ok(partner)
    }

    /// The partner's keys stop working; its data stays.
    pub async fn deactivate_partner(&self, id: Uuid) -> Result<(), Failure> {
        let partner = self.partner(id).await?;
        if partner.is_active() {
            let inactive = PartnerChanges {
                status: Some(EntityStatus::Inactive),
                ..PartnerChanges::default()
            };
            self.update_partner(id, inactive).await?;
            tracing::info!(partner_id = %id, "partner deactivated");
        }
        Ok(())
    }
}

//! The rules for creating and rotating API keys: a request draft checked all at once
//! (like a partner's), and how a rotation hands over from the old key to its successor.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::GeneratedKey;
use crate::error::{FieldError, FieldErrors};
use crate::model::{ApiKey, Scope};

/// The longest a rotated key keeps working next to its successor.
const MAX_GRACE: Duration = Duration::days(30);
const MAX_NAME_CHARS: usize = 200;

/// `POST /partners/{id}/api-keys` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyDraft {
    pub name: Option<String>,
    pub scopes: Vec<Scope>,
    pub subsystem_id: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A draft whose fields passed every rule; a generated secret turns it into a key.
#[derive(Debug)]
pub struct CheckedKeyDraft(KeyDraft);

impl KeyDraft {
    /// `subsystem_belongs`: whether `subsystemId` (if any) is one of the partner's.
    pub fn check(
        self,
        now: DateTime<Utc>,
        subsystem_belongs: bool,
    ) -> Result<CheckedKeyDraft, FieldErrors> {
        let mut errors = Vec::new();
        if self.scopes.is_empty() {
            errors.push(FieldError::new(
                "scopes",
                "must name at least one of 'ingest', 'read'",
            ));
        }
        if self.expires_at.is_some_and(|expires| expires <= now) {
            errors.push(FieldError::new("expiresAt", "must be in the future"));
        }
        if self
            .name
            .as_ref()
            .is_some_and(|name| name.chars().count() > MAX_NAME_CHARS)
        {
            errors.push(FieldError::new(
                "name",
                format!("must be at most {MAX_NAME_CHARS} characters"),
            ));
        }
        if !subsystem_belongs {
            errors.push(FieldError::new(
                "subsystemId",
                "is not a subsystem of this partner",
            ));
        }
        if errors.is_empty() {
            Ok(CheckedKeyDraft(self))
        } else {
            Err(FieldErrors(errors))
        }
    }
}

impl CheckedKeyDraft {
    pub fn subsystem_id(&self) -> Option<Uuid> {
        self.0.subsystem_id
    }

    pub fn into_key(
        self,
        partner_id: Uuid,
        generated: &GeneratedKey,
        now: DateTime<Utc>,
    ) -> ApiKey {
        let mut scopes = self.0.scopes;
        scopes.sort_by_key(|scope| *scope as u8);
        scopes.dedup();
        ApiKey {
            id: Uuid::now_v7(),
            partner_id,
            key_id: generated.key_id.clone(),
            name: self.0.name,
            scopes,
            subsystem_id: self.0.subsystem_id,
            expires_at: self.0.expires_at,
            revoked_at: None,
            replaced_by: None,
            created_at: now,
            secret_hash: generated.secret_hash.clone(),
        }
    }
}

/// `POST /api-keys/{id}/rotate` body (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateRequest {
    pub grace_seconds: Option<u64>,
}

impl RotateRequest {
    /// How long the old key keeps working: as asked (default 0), at most 30 days.
    pub fn grace(&self) -> Duration {
        let seconds = i64::try_from(self.grace_seconds.unwrap_or(0)).unwrap_or(i64::MAX);
        Duration::seconds(seconds.min(MAX_GRACE.num_seconds()))
    }
}

/// A rotation: the successor (same partner, scopes and subsystem, a new secret) and the
/// old key, which now expires at the end of the grace period and names its successor.
pub struct Rotation {
    pub successor: ApiKey,
    pub retired: ApiKey,
}

pub fn rotate(
    old: &ApiKey,
    generated: &GeneratedKey,
    grace: Duration,
    now: DateTime<Utc>,
) -> Rotation {
    let successor = ApiKey {
        id: Uuid::now_v7(),
        key_id: generated.key_id.clone(),
        revoked_at: None,
        replaced_by: None,
        created_at: now,
        secret_hash: generated.secret_hash.clone(),
        ..old.clone()
    };
    let grace_end = now + grace;
    let mut retired = old.clone();
    retired.expires_at = Some(
        old.expires_at
            .map_or(grace_end, |expires| expires.min(grace_end)),
    );
    retired.replaced_by = Some(successor.id);
    Rotation { successor, retired }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::generate;

    fn draft() -> KeyDraft {
        KeyDraft {
            name: None,
            scopes: vec![Scope::Read, Scope::Ingest, Scope::Read],
            subsystem_id: None,
            expires_at: None,
        }
    }

    #[test]
    fn a_draft_reports_every_bad_field_at_once() {
        let now = Utc::now();
        let bad = KeyDraft {
            name: Some("x".repeat(201)),
            scopes: Vec::new(),
            expires_at: Some(now),
            ..draft()
        };
        let fields: Vec<String> = bad
            .check(now, false)
            .unwrap_err()
            .0
            .into_iter()
            .map(|error| error.field)
            .collect();
        assert_eq!(fields, ["scopes", "expiresAt", "name", "subsystemId"]);
    }

    #[test]
    fn scopes_are_sorted_and_deduplicated() {
        let generated = generate(1);
        let key =
            draft()
                .check(Utc::now(), true)
                .unwrap()
                .into_key(Uuid::nil(), &generated, Utc::now());
        assert_eq!(key.scopes, [Scope::Ingest, Scope::Read]);
    }

    #[test]
    fn rotation_expires_the_old_key_at_the_end_of_the_grace() {
        let now = Utc::now();
        let generated = generate(1);
        let old = draft()
            .check(now, true)
            .unwrap()
            .into_key(Uuid::nil(), &generated, now);
        let next = generate(1);
        let rotation = rotate(&old, &next, Duration::seconds(60), now);
        assert_eq!(rotation.retired.replaced_by, Some(rotation.successor.id));
        assert_eq!(
            rotation.retired.expires_at,
            Some(now + Duration::seconds(60))
        );
        assert_eq!(rotation.successor.scopes, old.scopes);
        assert_ne!(rotation.successor.key_id, old.key_id);
        let huge = RotateRequest {
            grace_seconds: Some(u64::MAX),
        };
        assert_eq!(huge.grace(), MAX_GRACE);
    }
}

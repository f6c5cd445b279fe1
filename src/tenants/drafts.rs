//! The rules for partner and subsystem fields: request drafts and changes, checked all at
//! once so the client sees every problem in one answer.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::{FieldError, FieldErrors};
use crate::model::{Code, EntityStatus, Partner, Subsystem, SubsystemType};

/// `POST /partners` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartnerDraft {
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub code: String,
    pub name: String,
    pub email: Option<String>,
    pub contact_person: Option<String>,
    pub rate_limit_per_minute: Option<u32>,
    pub retention_days: Option<u32>,
    /// Keep clients' IP addresses with their events (default `false`).
    pub store_client_ip: Option<bool>,
    /// Host names that are not referrers (up to 50).
    pub own_hosts: Option<Vec<String>>,
}

/// `PATCH /partners/{id}` body: every field optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartnerChanges {
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub code: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub contact_person: Option<String>,
    pub rate_limit_per_minute: Option<u32>,
    /// Days events are kept; `null` keeps them until deleted.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, nullable)]
    pub retention_days: Option<Option<u32>>,
    pub store_client_ip: Option<bool>,
    /// Replaces the whole list.
    pub own_hosts: Option<Vec<String>>,
    pub status: Option<EntityStatus>,
}

/// A field that may be sent as `null` (to clear it) as well as left out: `Some(None)`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubsystemDraft {
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub code: String,
    pub name: String,
    #[serde(rename = "type")]
    pub subsystem_type: SubsystemType,
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubsystemChanges {
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub code: Option<String>,
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub subsystem_type: Option<SubsystemType>,
    pub description: Option<String>,
    pub status: Option<EntityStatus>,
}

const MAX_RATE_LIMIT_PER_MINUTE: u32 = 100_000_000;
const MAX_RETENTION_DAYS: u32 = 36_500;

/// Collects every field problem of one request body, so the client sees them all at once.
#[derive(Default)]
struct FieldChecks(Vec<FieldError>);

impl FieldChecks {
    fn code(&mut self, raw: &str) -> Option<Code> {
        Code::parse(raw)
            .map_err(|message| self.0.push(FieldError::new("code", message)))
            .ok()
    }

    fn text(&mut self, field: &str, value: &str, max_chars: usize) {
        if value.trim().is_empty() {
            self.0.push(FieldError::new(field, "must not be blank"));
        } else if value.chars().count() > max_chars {
            self.0.push(FieldError::new(
                field,
                format!("must be at most {max_chars} characters"),
            ));
        } else if value.chars().any(char::is_control) {
            self.0.push(FieldError::new(
                field,
                "must not contain control characters",
            ));
        }
    }

    fn email(&mut self, value: &str) {
        let looks_like_email = value.len() <= 254
            && value
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
        if !looks_like_email {
            self.0.push(FieldError::new(
                "email",
                format!("'{value}' is not an email address"),
            ));
        }
    }

    fn range(&mut self, field: &str, value: u32, max: u32) {
        if value == 0 || value > max {
            self.0.push(FieldError::new(
                field,
                format!("must be between 1 and {max}, got {value}"),
            ));
        }
    }

    fn own_hosts(&mut self, raw: &[String]) -> Vec<String> {
        super::hosts::own_hosts(raw).unwrap_or_else(|error| {
            self.0.push(error);
            Vec::new()
        })
    }

    fn finish<T>(self, value: T) -> Result<T, FieldErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(FieldErrors(self.0))
        }
    }
}

impl PartnerDraft {
    pub fn into_partner(self, now: DateTime<Utc>) -> Result<Partner, FieldErrors> {
        let mut checks = FieldChecks::default();
        let code = checks.code(&self.code);
        checks.text("name", &self.name, 200);
        if let Some(email) = &self.email {
            checks.email(email);
        }
        if let Some(person) = &self.contact_person {
            checks.text("contactPerson", person, 200);
        }
        if let Some(rate) = self.rate_limit_per_minute {
            checks.range("rateLimitPerMinute", rate, MAX_RATE_LIMIT_PER_MINUTE);
        }
        if let Some(days) = self.retention_days {
            checks.range("retentionDays", days, MAX_RETENTION_DAYS);
        }
        let own_hosts = checks.own_hosts(self.own_hosts.as_deref().unwrap_or_default());
        let Some(code) = code else {
            return Err(FieldErrors(checks.0));
        };
        checks.finish(Partner {
            id: Uuid::now_v7(),
            code,
            name: self.name.trim().to_string(),
            email: self.email,
            contact_person: self.contact_person,
            status: EntityStatus::Active,
            rate_limit_per_minute: self.rate_limit_per_minute,
            retention_days: self.retention_days,
            store_client_ip: self.store_client_ip.unwrap_or(false),
            own_hosts,
            dimensions: Vec::new(),
            created_at: now,
            updated_at: now,
        })
    }
}

impl PartnerChanges {
    pub fn apply(self, partner: &Partner, now: DateTime<Utc>) -> Result<Partner, FieldErrors> {
        let mut checks = FieldChecks::default();
        let mut updated = partner.clone();
        if let Some(raw) = &self.code {
            updated.code = checks.code(raw).unwrap_or(updated.code);
        }
        if let Some(name) = self.name {
            checks.text("name", &name, 200);
            updated.name = name.trim().to_string();
        }
        if let Some(email) = self.email {
            checks.email(&email);
            updated.email = Some(email);
        }
        if let Some(person) = self.contact_person {
            checks.text("contactPerson", &person, 200);
            updated.contact_person = Some(person);
        }
        if let Some(rate) = self.rate_limit_per_minute {
            checks.range("rateLimitPerMinute", rate, MAX_RATE_LIMIT_PER_MINUTE);
            updated.rate_limit_per_minute = Some(rate);
        }
        if let Some(days) = self.retention_days {
            if let Some(days) = days {
                checks.range("retentionDays", days, MAX_RETENTION_DAYS);
            }
            updated.retention_days = days;
        }
        if let Some(store) = self.store_client_ip {
            updated.store_client_ip = store;
        }
        if let Some(hosts) = &self.own_hosts {
            updated.own_hosts = checks.own_hosts(hosts);
        }
        if let Some(status) = self.status {
            updated.status = status;
        }
        updated.updated_at = now;
        checks.finish(updated)
    }
}

impl SubsystemDraft {
    pub fn into_subsystem(
        self,
        partner_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Subsystem, FieldErrors> {
        let mut checks = FieldChecks::default();
        let code = checks.code(&self.code);
        checks.text("name", &self.name, 200);
        if let Some(description) = &self.description {
            checks.text("description", description, 2000);
        }
        let Some(code) = code else {
            return Err(FieldErrors(checks.0));
        };
        checks.finish(Subsystem {
            id: Uuid::now_v7(),
            partner_id,
            code,
            name: self.name.trim().to_string(),
            subsystem_type: self.subsystem_type,
            description: self.description,
            status: EntityStatus::Active,
            created_at: now,
            updated_at: now,
        })
    }
}

impl SubsystemChanges {
    pub fn apply(
        self,
        subsystem: &Subsystem,
        now: DateTime<Utc>,
    ) -> Result<Subsystem, FieldErrors> {
        let mut checks = FieldChecks::default();
        let mut updated = subsystem.clone();
        if let Some(raw) = &self.code {
            updated.code = checks.code(raw).unwrap_or(updated.code);
        }
        if let Some(name) = self.name {
            checks.text("name", &name, 200);
            updated.name = name.trim().to_string();
        }
        if let Some(kind) = self.subsystem_type {
            updated.subsystem_type = kind;
        }
        if let Some(description) = self.description {
            checks.text("description", &description, 2000);
            updated.description = Some(description);
        }
        if let Some(status) = self.status {
            updated.status = status;
        }
        updated.updated_at = now;
        checks.finish(updated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(code: &str) -> PartnerDraft {
        PartnerDraft {
            code: code.into(),
            name: "Acme".into(),
            email: None,
            contact_person: None,
            rate_limit_per_minute: None,
            retention_days: None,
            store_client_ip: None,
            own_hosts: None,
        }
    }

    #[test]
    fn draft_reports_every_bad_field_at_once() {
        let mut bad = draft("Not Valid");
        bad.name = "  ".into();
        bad.email = Some("nope".into());
        bad.retention_days = Some(0);
        let errors = bad.into_partner(Utc::now()).unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["code", "name", "email", "retentionDays"]);
    }

    #[test]
    fn new_partner_is_active_with_trimmed_name() {
        let mut good = draft("acme");
        good.name = "  Acme Inc ".into();
        let partner = good.into_partner(Utc::now()).unwrap();
        assert!(partner.is_active());
        assert_eq!(partner.name, "Acme Inc");
    }

    #[test]
    fn changes_keep_untouched_fields_and_bump_updated_at() {
        let created = Utc::now();
        let partner = draft("acme").into_partner(created).unwrap();
        let later = created + chrono::Duration::seconds(5);
        let changes = PartnerChanges {
            status: Some(EntityStatus::Inactive),
            ..PartnerChanges::default()
        };
        let updated = changes.apply(&partner, later).unwrap();
        assert_eq!(updated.code, partner.code);
        assert!(!updated.is_active());
        assert_eq!(updated.updated_at, later);
    }

    #[test]
    fn own_hosts_and_the_client_ip_choice_are_kept_and_changed() {
        let mut draft = draft("acme");
        draft.own_hosts = Some(vec!["Shop.Example.com".into()]);
        let partner = draft.into_partner(Utc::now()).unwrap();
        assert_eq!(partner.own_hosts, ["shop.example.com"]);
        assert!(!partner.store_client_ip, "off unless asked");
        let changes = PartnerChanges {
            store_client_ip: Some(true),
            own_hosts: Some(vec!["https://x.com".into()]),
            ..PartnerChanges::default()
        };
        let refused = changes.apply(&partner, Utc::now()).unwrap_err();
        assert_eq!(refused.0[0].field, "ownHosts[0]");
        let changes = PartnerChanges {
            store_client_ip: Some(true),
            own_hosts: Some(Vec::new()),
            ..PartnerChanges::default()
        };
        let changed = changes.apply(&partner, Utc::now()).unwrap();
        assert!(changed.store_client_ip);
        assert!(changed.own_hosts.is_empty());
    }
}

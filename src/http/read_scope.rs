//! What a reader may see: the partner (and subsystem) a read request targets, checked
//! against the caller, and the time range it covers.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::extract::Principal;
use crate::http::state::AppState;

const DEFAULT_RANGE: Duration = Duration::hours(24);

/// A partner (and optional subsystem) the caller may read.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub partner_id: Uuid,
    pub subsystem_id: Option<Uuid>,
}

fn parse_id(name: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::field(name, format!("'{raw}' is not a UUID")))
}

/// Admin: any existing partner, named by `partnerId`. A read key: its own partner only
/// (another partner's id gets 403), and only its pinned subsystem if it has one.
pub async fn resolve_target(
    state: &AppState,
    principal: &Principal,
    partner_id: Option<&str>,
    subsystem_id: Option<&str>,
) -> Result<Target, ApiError> {
    let requested_partner = partner_id
        .map(|raw| parse_id("partnerId", raw))
        .transpose()?;
    let mut requested_subsystem = subsystem_id
        .map(|raw| parse_id("subsystemId", raw))
        .transpose()?;
    let partner_id = match principal {
        Principal::Admin => {
            requested_partner.ok_or_else(|| ApiError::field("partnerId", "is required"))?
        }
        Principal::Key(key) => {
            if requested_partner.is_some_and(|requested| requested != key.partner_id) {
                return Err(ApiError::forbidden(
                    "this API key may only read its own partner's data",
                ));
            }
            if let Some(pinned) = key.subsystem_id {
                if requested_subsystem.is_some_and(|requested| requested != pinned) {
                    return Err(ApiError::forbidden(
                        "this API key may only read its own subsystem's data",
                    ));
                }
                requested_subsystem = Some(pinned);
            }
            key.partner_id
        }
    };
    if state.directory.partner(partner_id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "no partner with id {partner_id}"
        )));
    }
    if let Some(subsystem_id) = requested_subsystem {
        let subsystem = state.directory.subsystem(subsystem_id).await?;
        if subsystem.is_none_or(|subsystem| subsystem.partner_id != partner_id) {
            return Err(ApiError::not_found(format!(
                "no subsystem {subsystem_id} for partner {partner_id}"
            )));
        }
    }
    Ok(Target {
        partner_id,
        subsystem_id: requested_subsystem,
    })
}

/// `from..to` (RFC 3339); missing values default to the last 24 hours.
pub fn time_range(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let parse = |name: &str, raw: &str| {
        DateTime::parse_from_rfc3339(raw)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|_| ApiError::field(name, format!("'{raw}' is not an RFC 3339 timestamp")))
    };
    let to = to
        .map(|raw| parse("to", raw))
        .transpose()?
        .unwrap_or_else(Utc::now);
    let from = from
        .map(|raw| parse("from", raw))
        .transpose()?
        .unwrap_or(to - DEFAULT_RANGE);
    if from >= to {
        return Err(ApiError::field("from", "must be earlier than 'to'"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_defaults_to_the_last_day() {
        let (from, to) = time_range(None, None).unwrap();
        assert_eq!(to - from, DEFAULT_RANGE);
    }

    #[test]
    fn range_must_be_ordered_and_well_formed() {
        assert!(time_range(Some("2026-11-21T00:00:00Z"), Some("2026-11-20T00:00:00Z")).is_err());
        let error = time_range(Some("last week"), None).unwrap_err();
        assert_eq!(error.errors[0].field, "from");
    }
}

//! `GET /api/v1/audit` (admin): the audit log of erasures, purges, exports and retention
//! changes, ascending by time, a page at a time.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::events::parse_limit;
use crate::http::extract::{Admin, query};
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::model::AuditEntry;
use crate::store::AuditQuery;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this partner's entries (default: every partner's).
    #[param(value_type = Option<uuid::Uuid>)]
    partner_id: Option<String>,
    /// RFC 3339 (default: the beginning).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    from: Option<String>,
    /// RFC 3339, exclusive (default: now).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    to: Option<String>,
    /// Entries per page (1 to 1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditLogPage {
    items: Vec<AuditEntry>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "partners", params(AuditParams),
    responses((status = 200, description = "Audit entries, oldest first", body = AuditLogPage)),
    security(("bearer" = [])))]
pub async fn audit(
    State(state): State<Arc<AppState>>,
    _: Admin,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<AuditLogPage>, ApiError> {
    let params = query(params)?;
    let partner = match params.partner_id.as_deref() {
        Some(raw) => {
            Some(Uuid::parse_str(raw).map_err(|_| ApiError::field("partnerId", "is not a UUID"))?)
        }
        None => None,
    };
    let from = instant("from", params.from.as_deref())?.unwrap_or(DateTime::UNIX_EPOCH);
    let to = instant("to", params.to.as_deref())?.unwrap_or_else(Utc::now);
    if from >= to {
        return Err(ApiError::field("from", "must be earlier than 'to'"));
    }
    let query = AuditQuery {
        partner,
        from,
        to,
        after: params.cursor.as_deref().map(decode_cursor).transpose()?,
        limit: parse_limit(params.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?,
    };
    let page = state.audit.page(query).await?;
    Ok(Json(AuditLogPage {
        items: page.items,
        next_cursor: page.next.map(encode_cursor),
    }))
}

fn instant(field: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|_| ApiError::field(field, format!("'{raw}' is not an RFC 3339 timestamp")))
    })
    .transpose()
}

fn encode_cursor((at, id): (DateTime<Utc>, Uuid)) -> String {
    let mut bytes = at.timestamp_micros().to_be_bytes().to_vec();
    bytes.extend_from_slice(id.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_cursor(raw: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let invalid = || ApiError::field("cursor", "is not a cursor of this listing");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    if bytes.len() != 24 {
        return Err(invalid());
    }
    let micros = i64::from_be_bytes(bytes[..8].try_into().expect("eight bytes"));
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    let id = Uuid::from_slice(&bytes[8..]).map_err(|_| invalid())?;
    Ok((at, id))
}

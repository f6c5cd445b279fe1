//! `GET /api/v1/export`: every matching event, ascending by (timestamp, event id), streamed
//! as NDJSON, CSV or Parquet (`export`), gzip when asked (`Accept-Encoding`, on the route's layer).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::auth::{Caller, ReadTarget, read_target};
use crate::export::{Export, Format, PAGE_EVENTS};
use crate::http::extract::{Reader, query};
use crate::http::problem::ApiError;
use crate::http::read_scope::time_range;
use crate::http::state::AppState;
use crate::model::{AuditAction, PersonIds};
use crate::store::{EventFilter, EventScope, ExportPosition, ExportQuery};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Required with the admin token; a `read` key exports its own partner.
    #[param(value_type = Option<uuid::Uuid>)]
    partner_id: Option<String>,
    #[param(value_type = Option<uuid::Uuid>)]
    subsystem_id: Option<String>,
    /// RFC 3339, required.
    #[param(value_type = chrono::DateTime<chrono::Utc>)]
    from: Option<String>,
    /// RFC 3339, required.
    #[param(value_type = chrono::DateTime<chrono::Utc>)]
    to: Option<String>,
    event_type: Option<String>,
    /// One person's events: those with this `userId`, and those without one whose
    /// `anonymousId` is joined to it.
    user_id: Option<String>,
    /// `ndjson` (default), `csv` or `parquet`.
    format: Option<String>,
    /// Resume after this event (with `afterEventId`): the `timestamp` of the last event
    /// received.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    after_timestamp: Option<String>,
    /// Resume after this event (with `afterTimestamp`): its `eventId`.
    after_event_id: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/export", tag = "reading", params(ExportParams),
    responses((status = 200, description = "Every matching event, ascending by (timestamp, eventId): NDJSON (the listing's event shape, one a line) or CSV (a header, then one row an event)",
        content((String = "application/x-ndjson"), (String = "text/csv"), (String = "application/vnd.apache.parquet")))),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn export(
    State(state): State<Arc<AppState>>,
    Reader(caller): Reader,
    params: Result<Query<ExportParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    let target = read_target(
        &state.directory,
        &caller,
        params.partner_id.as_deref(),
        params.subsystem_id.as_deref(),
    )
    .await?;
    let partner = target.partner_id;
    let export = export_of(&state, params, target).await?;
    audit_export(&state, (&caller, partner), &export).await?;
    let content_type = export.format.content_type();
    let body = Body::from_stream(crate::export::stream(Arc::clone(&state.store), export)?);
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// Records who exports what (each resumed part too), before anything is sent.
async fn audit_export(
    state: &AppState,
    (caller, partner): (&Caller, uuid::Uuid),
    export: &Export,
) -> Result<(), ApiError> {
    let actor = match caller {
        Caller::Admin => "admin".to_string(),
        Caller::Key(holder) => format!("key:{}", holder.key.key_id),
    };
    let query = &export.query;
    let details = serde_json::json!({
        "scope": match query.scope {
            EventScope::Partner(id) => serde_json::json!({"partnerId": id}),
            EventScope::Subsystem(id) => serde_json::json!({"subsystemId": id}),
        },
        "from": query.from,
        "to": query.to,
        "eventType": query.filter.event_type,
        "userId": export.person.as_ref().map(PersonIds::user),
        "format": export.format.name(),
        "resumed": query.after.is_some(),
    });
    Ok(state
        .audit
        .record(partner, AuditAction::Export, &actor, details)
        .await?)
}

/// What the parameters ask to export, for `target`'s partner or subsystem.
async fn export_of(
    state: &AppState,
    params: ExportParams,
    target: ReadTarget,
) -> Result<Export, ApiError> {
    for (name, value) in [("from", &params.from), ("to", &params.to)] {
        if value.is_none() {
            return Err(ApiError::field(name, "is required"));
        }
    }
    let (from, to) = time_range(params.from.as_deref(), params.to.as_deref())?;
    let format = match params.format.as_deref() {
        None => Format::Ndjson,
        Some(name) => Format::parse(name).ok_or_else(|| {
            ApiError::field(
                "format",
                format!("must be ndjson, csv or parquet, got '{name}'"),
            )
        })?,
    };
    let after = after(params.after_timestamp.as_deref(), params.after_event_id)?;
    let person = match params.user_id {
        Some(user) => {
            let joined = state
                .store
                .anonymous_ids_of(target.partner_id, user.clone())
                .await?;
            Some(PersonIds::new(user, joined))
        }
        None => None,
    };
    let query = ExportQuery {
        scope: match target.subsystem_id {
            Some(subsystem) => EventScope::Subsystem(subsystem),
            None => EventScope::Partner(target.partner_id),
        },
        from,
        to,
        filter: EventFilter {
            event_type: params.event_type,
            ..EventFilter::default()
        },
        after,
        limit: PAGE_EVENTS,
    };
    Ok(Export {
        query,
        person,
        format,
    })
}

/// The position to resume after: both parts, or neither.
fn after(
    timestamp: Option<&str>,
    event_id: Option<String>,
) -> Result<Option<ExportPosition>, ApiError> {
    match (timestamp, event_id) {
        (None, None) => Ok(None),
        (Some(raw), Some(event_id)) => {
            let timestamp = DateTime::parse_from_rfc3339(raw)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::field(
                        "afterTimestamp",
                        format!("'{raw}' is not an RFC 3339 timestamp"),
                    )
                })?;
            Ok(Some(ExportPosition {
                timestamp,
                event_id,
            }))
        }
        (None, Some(_)) => Err(ApiError::field(
            "afterTimestamp",
            "is required with afterEventId",
        )),
        (Some(_), None) => Err(ApiError::field(
            "afterEventId",
            "is required with afterTimestamp",
        )),
    }
}

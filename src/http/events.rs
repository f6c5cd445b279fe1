//! `GET /api/v1/events`: stored events, newest first, with filters and cursor paging.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::auth::{ReadTarget, read_target};
use crate::http::extract::{Reader, query};
use crate::http::problem::ApiError;
use crate::http::read_scope::time_range;
use crate::http::state::AppState;
use crate::model::Event;
use crate::store::{EventFilter, EventQuery, EventScope, StoreError};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// Required with the admin token; a `read` key reads its own partner.
    #[param(value_type = Option<uuid::Uuid>)]
    partner_id: Option<String>,
    #[param(value_type = Option<uuid::Uuid>)]
    subsystem_id: Option<String>,
    event_type: Option<String>,
    user_id: Option<String>,
    #[param(value_type = Option<bool>)]
    is_valid: Option<String>,
    /// RFC 3339; default: 24 hours before `to`.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    from: Option<String>,
    /// RFC 3339; default: now.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    to: Option<String>,
    /// 1 to 1000, default 100.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsPage {
    items: Vec<Event>,
    next_cursor: Option<String>,
}

pub fn parse_limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(raw) = raw else { return Ok(default) };
    match raw.parse::<usize>() {
        Ok(limit) if (1..=max).contains(&limit) => Ok(limit),
        _ => Err(ApiError::field(
            "limit",
            format!("must be an integer from 1 to {max}, got '{raw}'"),
        )),
    }
}

fn parse_bool(name: &str, raw: Option<&str>) -> Result<Option<bool>, ApiError> {
    match raw {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(ApiError::field(
            name,
            format!("must be true or false, got '{other}'"),
        )),
    }
}

fn invalid_cursor() -> ApiError {
    StoreError::InvalidCursor.into()
}

#[utoipa::path(get, path = "/api/v1/events", tag = "reading", params(EventsParams),
    responses((status = 200, description = "Stored events, newest first", body = EventsPage)),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Reader(caller): Reader,
    params: Result<Query<EventsParams>, QueryRejection>,
) -> Result<Json<EventsPage>, ApiError> {
    let params = query(params)?;
    let target = read_target(
        &state.directory,
        &caller,
        params.partner_id.as_deref(),
        params.subsystem_id.as_deref(),
    )
    .await?;
    let page = state
        .store
        .query_events(&event_query(params, target)?)
        .await?;
    Ok(Json(EventsPage {
        items: page.items,
        next_cursor: page
            .next_cursor
            .map(|cursor| URL_SAFE_NO_PAD.encode(cursor)),
    }))
}

pub(crate) fn event_query(
    params: EventsParams,
    target: ReadTarget,
) -> Result<EventQuery, ApiError> {
    let (from, to) = time_range(params.from.as_deref(), params.to.as_deref())?;
    let cursor = params
        .cursor
        .as_deref()
        .map(|raw| URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid_cursor()))
        .transpose()?;
    Ok(EventQuery {
        scope: match target.subsystem_id {
            Some(subsystem) => EventScope::Subsystem(subsystem),
            None => EventScope::Partner(target.partner_id),
        },
        from,
        to,
        filter: EventFilter {
            event_type: params.event_type,
            user_id: params.user_id,
            is_valid: parse_bool("isValid", params.is_valid.as_deref())?,
        },
        limit: parse_limit(params.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?,
        cursor,
        with_payload: true,
    })
}

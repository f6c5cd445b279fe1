//! `GET /api/v1/people/{userId}`: a person's lookup (API.md, "People").

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use serde::Deserialize;

use crate::auth::read_target;
use crate::http::extract::{Reader, query};
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::reports::{Person, ReportScope};

/// The longest user id looked up (ids are kept as sent; this only bounds the request).
const MAX_USER_ID_CHARS: usize = 1_000;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PersonParams {
    /// Required with the admin token; a `read` key reads its own partner.
    #[param(value_type = Option<uuid::Uuid>)]
    partner_id: Option<String>,
    /// Only the person's events in this subsystem (a key pinned to one reads only it).
    #[param(value_type = Option<uuid::Uuid>)]
    subsystem_id: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/people/{userId}", tag = "reading",
    params(("userId" = String, Path, description = "The person's user id"), PersonParams),
    responses(
        (status = 200, description = "The person's joined ids, first and last seen, events", body = Person),
        (status = 404, description = "No event and no joined id of this user")),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn person(
    State(state): State<Arc<AppState>>,
    Reader(caller): Reader,
    Path(user_id): Path<String>,
    params: Result<Query<PersonParams>, QueryRejection>,
) -> Result<Json<Person>, ApiError> {
    let params = query(params)?;
    if user_id.is_empty() || user_id.chars().count() > MAX_USER_ID_CHARS {
        return Err(ApiError::field(
            "userId",
            format!("must be 1 to {MAX_USER_ID_CHARS} characters"),
        ));
    }
    let target = read_target(
        &state.directory,
        &caller,
        params.partner_id.as_deref(),
        params.subsystem_id.as_deref(),
    )
    .await?;
    let now = Utc::now();
    let scope = ReportScope {
        partner_id: target.partner_id,
        subsystem_id: target.subsystem_id,
        from: now,
        to: now,
        include_bots: true,
    };
    match state.reports.person(scope, &user_id).await? {
        Some(person) => Ok(Json(person)),
        None => Err(ApiError::not_found(format!(
            "no event and no joined id of user '{user_id}'"
        ))),
    }
}

//! Partner management (admin token).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::events::parse_limit;
use crate::http::extract::{Admin, json_body, path_id, query};
use crate::http::openapi::Problem;
use crate::http::problem::ApiError;
use crate::http::respond::created;
use crate::http::state::AppState;
use crate::model::{Erasure, Partner};
use crate::tenants::{DimensionsDraft, PartnerChanges, PartnerDraft};

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

#[utoipa::path(post, path = "/api/v1/partners", tag = "partners",
    request_body = PartnerDraft,
    responses((status = 201, description = "Created", body = Partner),
              (status = 409, description = "The code is taken", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    _: Admin,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let partner = state
        .management
        .create_partner(json_body(&headers, body)?)
        .await?;
    Ok(created(format!("/api/v1/partners/{}", partner.id), partner))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Partners per page (1 to 1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
    /// Only the partner with this code (an empty page when there is none).
    code: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerPage {
    items: Vec<Partner>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/partners", tag = "partners", params(PageParams),
    responses((status = 200, description = "A page of partners", body = PartnerPage)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    _: Admin,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<PartnerPage>, ApiError> {
    let params = query(params)?;
    if let Some(code) = &params.code {
        let items = state.management.partner_by_code(code).await?;
        let items = items.into_iter().collect();
        return Ok(Json(PartnerPage {
            items,
            next_cursor: None,
        }));
    }
    let limit = parse_limit(params.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let items = state.management.partners(after, limit).await?;
    let next_cursor = (items.len() == limit)
        .then(|| {
            items
                .last()
                .map(|last| URL_SAFE_NO_PAD.encode(last.id.as_bytes()))
        })
        .flatten();
    Ok(Json(PartnerPage { items, next_cursor }))
}

fn decode_cursor(raw: &str) -> Result<Uuid, ApiError> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::field("cursor", "is not a cursor of this listing"))
}

#[utoipa::path(get, path = "/api/v1/partners/{id}", tag = "partners", params(("id" = Uuid, Path, description = "The partner's id")),
    responses((status = 200, description = "The partner", body = Partner)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Partner>, ApiError> {
    let id = path_id(&id, "partner")?;
    Ok(Json(state.management.partner(id).await?))
}

#[utoipa::path(patch, path = "/api/v1/partners/{id}", tag = "partners", params(("id" = Uuid, Path, description = "The partner's id")),
    request_body = PartnerChanges,
    responses((status = 200, description = "The changed partner", body = Partner),
              (status = 409, description = "The code is taken", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Partner>, ApiError> {
    let changes = json_body(&headers, body)?;
    let id = path_id(&id, "partner")?;
    Ok(Json(state.management.update_partner(id, changes).await?))
}

/// The properties a partner declares as report dimensions.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dimensions {
    partner_id: Uuid,
    properties: Vec<String>,
}

/// Replaces the partner's declared property dimensions (up to 20).
#[utoipa::path(put, path = "/api/v1/partners/{id}/dimensions", tag = "partners", params(("id" = Uuid, Path, description = "The partner's id")),
    request_body = DimensionsDraft,
    responses((status = 200, description = "Declared: rolled up from now on; `rollups rebuild` backfills", body = Dimensions),
              (status = 400, description = "A name is blank, too long, or there are more than 20", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn declare_dimensions(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Dimensions>, ApiError> {
    let draft = json_body(&headers, body)?;
    let id = path_id(&id, "partner")?;
    let partner = state.management.declare_dimensions(id, draft).await?;
    Ok(Json(Dimensions {
        partner_id: partner.id,
        properties: partner.dimensions,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// `true`: erase the partner with all its data, as a job (default `false`).
    #[param(value_type = Option<bool>)]
    purge: Option<String>,
}

/// Deactivates: the partner's keys stop working, its data stays; with `purge=true`, a job
/// erases all its data too.
#[utoipa::path(delete, path = "/api/v1/partners/{id}", tag = "partners", params(("id" = Uuid, Path, description = "The partner's id"), DeleteParams),
    responses((status = 204, description = "Deactivated: its keys stop working, its data stays"),
              (status = 202, description = "Deactivated, and its data being erased: the purge job (`GET .../erasures/{eid}`)", body = Erasure)),
    security(("bearer" = [])))]
pub async fn deactivate(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
    params: Result<Query<DeleteParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "partner")?;
    let purge = match query(params)?.purge.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::field(
                "purge",
                format!("must be true or false, got '{other}'"),
            ));
        }
    };
    if purge {
        let job = state.erasures.purge(id).await?;
        return Ok((StatusCode::ACCEPTED, Json(job)).into_response());
    }
    state.management.deactivate_partner(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

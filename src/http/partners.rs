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
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::events::parse_limit;
use crate::http::extract::{Admin, json_body, query};
use crate::http::state::AppState;
use crate::redis::Invalidation;
use crate::tenants::{EntityStatus, Partner, PartnerChanges, PartnerDraft};

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// Path ids that are not UUIDs name nothing: 404, like an unknown id.
pub fn path_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no {what} with id '{raw}'")))
}

pub async fn existing_partner(state: &AppState, raw_id: &str) -> Result<Partner, ApiError> {
    let id = path_id(raw_id, "partner")?;
    state
        .store
        .partner(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no partner with id '{id}'")))
}

pub fn created<T: Serialize>(location: String, body: T) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = location.parse() {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, value);
    }
    response
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    _: Admin,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let draft: PartnerDraft = json_body(&headers, body)?;
    let partner = draft.into_partner(Utc::now()).map_err(ApiError::fields)?;
    state.store.insert_partner(&partner).await?;
    tracing::info!(partner_id = %partner.id, code = partner.code.as_str(), "partner created");
    Ok(created(format!("/api/v1/partners/{}", partner.id), partner))
}

#[derive(Deserialize)]
pub struct PageParams {
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartnerPage {
    items: Vec<Partner>,
    next_cursor: Option<String>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    _: Admin,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<PartnerPage>, ApiError> {
    let params = query(params)?;
    let limit = parse_limit(params.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    let after = params
        .cursor
        .as_deref()
        .map(|raw| {
            URL_SAFE_NO_PAD
                .decode(raw)
                .ok()
                .and_then(|bytes| Uuid::from_slice(&bytes).ok())
                .ok_or_else(|| ApiError::field("cursor", "is not a cursor of this listing"))
        })
        .transpose()?;
    let items = state.store.partners(after, limit).await?;
    let next_cursor = (items.len() == limit)
        .then(|| {
            items
                .last()
                .map(|last| URL_SAFE_NO_PAD.encode(last.id.as_bytes()))
        })
        .flatten();
    Ok(Json(PartnerPage { items, next_cursor }))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Partner>, ApiError> {
    Ok(Json(existing_partner(&state, &id).await?))
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Partner>, ApiError> {
    let changes: PartnerChanges = json_body(&headers, body)?;
    let partner = existing_partner(&state, &id).await?;
    let updated = changes
        .apply(&partner, Utc::now())
        .map_err(ApiError::fields)?;
    state.store.update_partner(&updated).await?;
    state.invalidate(Invalidation::Identities).await;
    Ok(Json(updated))
}

/// Deactivates: the partner's keys stop working, its data stays.
pub async fn deactivate(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut partner = existing_partner(&state, &id).await?;
    if partner.status != EntityStatus::Inactive {
        partner.status = EntityStatus::Inactive;
        partner.updated_at = Utc::now();
        state.store.update_partner(&partner).await?;
        state.invalidate(Invalidation::Identities).await;
        tracing::info!(partner_id = %partner.id, "partner deactivated");
    }
    Ok(StatusCode::NO_CONTENT)
}

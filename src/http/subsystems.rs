//! Subsystem management (admin token).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use crate::http::extract::{Admin, json_body, path_id};
use crate::http::problem::ApiError;
use crate::http::respond::{Items, created};
use crate::http::state::AppState;
use crate::model::Subsystem;

pub async fn create(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(partner_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let draft = json_body(&headers, body)?;
    let partner_id = path_id(&partner_id, "partner")?;
    let subsystem = state.management.create_subsystem(partner_id, draft).await?;
    Ok(created(
        format!("/api/v1/subsystems/{}", subsystem.id),
        subsystem,
    ))
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(partner_id): Path<String>,
) -> Result<Json<Items<Subsystem>>, ApiError> {
    let partner_id = path_id(&partner_id, "partner")?;
    Ok(Items::json(state.management.subsystems(partner_id).await?))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Subsystem>, ApiError> {
    let id = path_id(&id, "subsystem")?;
    Ok(Json(state.management.subsystem(id).await?))
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Subsystem>, ApiError> {
    let changes = json_body(&headers, body)?;
    let id = path_id(&id, "subsystem")?;
    Ok(Json(state.management.update_subsystem(id, changes).await?))
}

/// Deactivates: events for it are refused and keys pinned to it stop working.
pub async fn deactivate(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "subsystem")?;
    state.management.deactivate_subsystem(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

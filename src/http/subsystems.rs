//! Subsystem management (admin token).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;

use crate::error::ApiError;
use crate::http::extract::{Admin, json_body};
use crate::http::partners::{created, existing_partner, path_id};
use crate::http::state::AppState;
use crate::redis::Invalidation;
use crate::tenants::{EntityStatus, Subsystem, SubsystemChanges, SubsystemDraft};

async fn existing_subsystem(state: &AppState, raw_id: &str) -> Result<Subsystem, ApiError> {
    let id = path_id(raw_id, "subsystem")?;
    state
        .store
        .subsystem(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no subsystem with id '{id}'")))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(partner_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let draft: SubsystemDraft = json_body(&headers, body)?;
    let partner = existing_partner(&state, &partner_id).await?;
    let subsystem = draft
        .into_subsystem(partner.id, Utc::now())
        .map_err(ApiError::fields)?;
    state.store.insert_subsystem(&subsystem).await?;
    state.invalidate(Invalidation::Identities).await;
    tracing::info!(subsystem_id = %subsystem.id, partner_id = %partner.id, "subsystem created");
    Ok(created(
        format!("/api/v1/subsystems/{}", subsystem.id),
        subsystem,
    ))
}

#[derive(Serialize)]
pub struct SubsystemList {
    items: Vec<Subsystem>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(partner_id): Path<String>,
) -> Result<Json<SubsystemList>, ApiError> {
    let partner = existing_partner(&state, &partner_id).await?;
    let items = state.store.subsystems(partner.id).await?;
    Ok(Json(SubsystemList { items }))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Subsystem>, ApiError> {
    Ok(Json(existing_subsystem(&state, &id).await?))
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Subsystem>, ApiError> {
    let changes: SubsystemChanges = json_body(&headers, body)?;
    let subsystem = existing_subsystem(&state, &id).await?;
    let updated = changes
        .apply(&subsystem, Utc::now())
        .map_err(ApiError::fields)?;
    state.store.update_subsystem(&updated).await?;
    state.invalidate(Invalidation::Identities).await;
    Ok(Json(updated))
}

/// Deactivates: events for it are refused and keys pinned to it stop working.
pub async fn deactivate(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut subsystem = existing_subsystem(&state, &id).await?;
    if subsystem.status != EntityStatus::Inactive {
        subsystem.status = EntityStatus::Inactive;
        subsystem.updated_at = Utc::now();
        state.store.update_subsystem(&subsystem).await?;
        state.invalidate(Invalidation::Identities).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

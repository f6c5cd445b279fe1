//! API key management (admin token): create, list, rotate with grace, revoke.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{ApiKey, GeneratedKey, Scope, generate};
use crate::error::{ApiError, ErrorKind, FieldError};
use crate::http::extract::{Admin, BodyKind, json_body, json_bytes, parse_json};
use crate::http::partners::{created, existing_partner, path_id};
use crate::http::state::AppState;
use crate::redis::Invalidation;

const MAX_GRACE: Duration = Duration::days(30);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyRequest {
    name: Option<String>,
    scopes: Vec<Scope>,
    subsystem_id: Option<Uuid>,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateRequest {
    grace_seconds: Option<u64>,
}

/// A key as listed: never the secret or its hash.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    id: Uuid,
    partner_id: Uuid,
    name: Option<String>,
    key_prefix: String,
    scopes: Vec<Scope>,
    subsystem_id: Option<Uuid>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    replaced_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    status: &'static str,
}

impl KeyView {
    fn of(key: &ApiKey, now: DateTime<Utc>) -> KeyView {
        let status = match key.unusable_reason(now) {
            None => "active",
            Some(_) if key.revoked_at.is_some() => "revoked",
            Some(_) => "expired",
        };
        KeyView {
            id: key.id,
            partner_id: key.partner_id,
            name: key.name.clone(),
            key_prefix: key.key_prefix(),
            scopes: key.scopes.clone(),
            subsystem_id: key.subsystem_id,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            replaced_by: key.replaced_by,
            created_at: key.created_at,
            status,
        }
    }
}

/// The create/rotate answer: the only time the clear key is shown.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    key: String,
    #[serde(flatten)]
    view: KeyView,
}

/// PBKDF2 is deliberately slow: generate off the async threads.
async fn generate_key(iterations: u32) -> Result<GeneratedKey, ApiError> {
    tokio::task::spawn_blocking(move || generate(iterations))
        .await
        .map_err(|error| ApiError::internal(&error))
}

async fn existing_key(state: &AppState, raw_id: &str) -> Result<ApiKey, ApiError> {
    let id = path_id(raw_id, "API key")?;
    state
        .store
        .api_key(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no API key with id '{id}'")))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(partner_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: KeyRequest = json_body(&headers, body)?;
    let partner = existing_partner(&state, &partner_id).await?;
    let now = Utc::now();
    let mut errors = Vec::new();
    if request.scopes.is_empty() {
        errors.push(FieldError::new(
            "scopes",
            "must name at least one of 'ingest', 'read'",
        ));
    }
    if request.expires_at.is_some_and(|expires| expires <= now) {
        errors.push(FieldError::new("expiresAt", "must be in the future"));
    }
    if request
        .name
        .as_ref()
        .is_some_and(|name| name.chars().count() > 200)
    {
        errors.push(FieldError::new("name", "must be at most 200 characters"));
    }
    if let Some(subsystem_id) = request.subsystem_id {
        let subsystem = state.store.subsystem(subsystem_id).await?;
        if subsystem.is_none_or(|subsystem| subsystem.partner_id != partner.id) {
            errors.push(FieldError::new(
                "subsystemId",
                "is not a subsystem of this partner",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let mut scopes = request.scopes;
    scopes.sort_by_key(|scope| *scope as u8);
    scopes.dedup();
    let generated = generate_key(state.config.auth.pbkdf2_iterations).await?;
    let key = ApiKey {
        id: Uuid::now_v7(),
        partner_id: partner.id,
        key_id: generated.key_id,
        name: request.name,
        scopes,
        subsystem_id: request.subsystem_id,
        expires_at: request.expires_at,
        revoked_at: None,
        replaced_by: None,
        created_at: now,
        secret_hash: generated.secret_hash,
    };
    state.store.insert_api_key(&key).await?;
    tracing::info!(api_key_id = %key.id, key_id = key.key_id.as_str(), partner_id = %partner.id, "api key created");
    let view = KeyView::of(&key, now);
    Ok(created(
        format!("/api/v1/api-keys/{}", key.id),
        CreatedKey {
            key: generated.clear,
            view,
        },
    ))
}

#[derive(Serialize)]
pub struct KeyList {
    items: Vec<KeyView>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(partner_id): Path<String>,
) -> Result<Json<KeyList>, ApiError> {
    let partner = existing_partner(&state, &partner_id).await?;
    let now = Utc::now();
    let keys = state.store.api_keys(partner.id).await?;
    Ok(Json(KeyList {
        items: keys.iter().map(|key| KeyView::of(key, now)).collect(),
    }))
}

/// Issues a successor with the same partner, scopes and subsystem; the old key keeps
/// working for `graceSeconds` (default 0) and then stops.
pub async fn rotate(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = json_bytes(&headers, body, BodyKind::Json)?;
    let request: RotateRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        RotateRequest::default()
    } else {
        parse_json(&bytes)?
    };
    let grace = Duration::seconds(
        i64::try_from(request.grace_seconds.unwrap_or(0))
            .unwrap_or(i64::MAX)
            .min(MAX_GRACE.num_seconds()),
    );
    let mut old = existing_key(&state, &id).await?;
    let now = Utc::now();
    if let Some(reason) = old.unusable_reason(now) {
        return Err(ApiError::new(
            ErrorKind::Conflict,
            format!("cannot rotate: {reason}"),
        ));
    }
    let generated = generate_key(state.config.auth.pbkdf2_iterations).await?;
    let successor = ApiKey {
        id: Uuid::now_v7(),
        key_id: generated.key_id,
        revoked_at: None,
        replaced_by: None,
        created_at: now,
        secret_hash: generated.secret_hash,
        ..old.clone()
    };
    state.store.insert_api_key(&successor).await?;
    let grace_end = now + grace;
    old.expires_at = Some(
        old.expires_at
            .map_or(grace_end, |expires| expires.min(grace_end)),
    );
    old.replaced_by = Some(successor.id);
    state.store.update_api_key(&old).await?;
    state.invalidate(Invalidation::Identities).await;
    tracing::info!(api_key_id = %old.id, key_id = old.key_id.as_str(), new_api_key_id = %successor.id, new_key_id = successor.key_id.as_str(), grace_seconds = grace.num_seconds(), "api key rotated");
    Ok(created(
        format!("/api/v1/api-keys/{}", successor.id),
        CreatedKey {
            key: generated.clear,
            view: KeyView::of(&successor, now),
        },
    ))
}

pub async fn revoke(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut key = existing_key(&state, &id).await?;
    if key.revoked_at.is_none() {
        key.revoked_at = Some(Utc::now());
        state.store.update_api_key(&key).await?;
        state.invalidate(Invalidation::Identities).await;
        tracing::info!(api_key_id = %key.id, key_id = key.key_id.as_str(), "api key revoked");
    }
    Ok(StatusCode::NO_CONTENT)
}

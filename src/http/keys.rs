//! API key management (admin token): create, list, rotate with grace, revoke.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::{KeyDraft, RotateRequest};
use crate::http::extract::{Admin, BodyKind, json_body, json_bytes, parse_json, path_id};
use crate::http::problem::ApiError;
use crate::http::respond::{Items, created};
use crate::http::state::AppState;
use crate::manage::IssuedKey;
use crate::model::{ApiKey, Scope};

/// A key as listed: never the secret or its hash.
#[derive(Serialize, utoipa::ToSchema)]
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
    /// `active`, `revoked` or `expired`.
    #[schema(value_type = String)]
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
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    key: String,
    #[serde(flatten)]
    view: KeyView,
}

fn issued(issued: IssuedKey) -> Response {
    let location = format!("/api/v1/api-keys/{}", issued.key.id);
    let view = KeyView::of(&issued.key, Utc::now());
    created(
        location,
        CreatedKey {
            key: issued.clear,
            view,
        },
    )
}

#[utoipa::path(post, path = "/api/v1/partners/{id}/api-keys", tag = "api-keys", params(("id" = Uuid, Path, description = "The partner's id")),
    request_body = KeyDraft,
    responses((status = 201, description = "Created: the only answer that shows the key in clear", body = CreatedKey)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(partner_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let draft = json_body(&headers, body)?;
    let partner_id = path_id(&partner_id, "partner")?;
    Ok(issued(
        state.management.create_key(partner_id, draft).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/partners/{id}/api-keys", tag = "api-keys", params(("id" = Uuid, Path, description = "The partner's id")),
    responses((status = 200, description = "The partner's keys, without secrets", body = Items<KeyView>)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(partner_id): Path<String>,
) -> Result<Json<Items<KeyView>>, ApiError> {
    let partner_id = path_id(&partner_id, "partner")?;
    let keys = state.management.keys(partner_id).await?;
    let now = Utc::now();
    Ok(Items::json(
        keys.iter().map(|key| KeyView::of(key, now)).collect(),
    ))
}

/// The body is optional: an empty one rotates without grace.
#[utoipa::path(post, path = "/api/v1/api-keys/{id}/rotate", tag = "api-keys", params(("id" = Uuid, Path, description = "The API key's id")),
    request_body(content = RotateRequest, description = "May also be empty: rotates without grace"),
    responses((status = 201, description = "The successor key, in clear once", body = CreatedKey)),
    security(("bearer" = [])))]
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
    let id = path_id(&id, "API key")?;
    Ok(issued(state.management.rotate_key(id, request).await?))
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", params(("id" = Uuid, Path, description = "The API key's id")),
    responses((status = 204, description = "Revoked at once")),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "API key")?;
    state.management.revoke_key(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

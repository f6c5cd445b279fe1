//! Erasures (admin token): `POST /api/v1/partners/{id}/erasures` asks for one, which runs
//! as a job; `GET` lists them or answers one, with its receipt once done (API.md,
//! "Data lifecycle").

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::http::extract::{Admin, json_body, path_id};
use crate::http::openapi::Problem;
use crate::http::problem::ApiError;
use crate::http::respond::Items;
use crate::http::state::AppState;
use crate::lifecycle::ErasureRequest;
use crate::model::Erasure;

#[utoipa::path(post, path = "/api/v1/partners/{id}/erasures", tag = "partners",
    params(("id" = Uuid, Path, description = "The partner's id")),
    request_body = ErasureRequest,
    responses((status = 202, description = "The erasure job (a repeat of one not finished answers that one)", body = Erasure),
              (status = 400, description = "Not exactly one of userId and anonymousId", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn request(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request = json_body(&headers, body)?;
    let partner = path_id(&id, "partner")?;
    let erasure = state.erasures.request(partner, request).await?;
    Ok((StatusCode::ACCEPTED, Json(erasure)).into_response())
}

#[utoipa::path(get, path = "/api/v1/partners/{id}/erasures", tag = "partners",
    params(("id" = Uuid, Path, description = "The partner's id")),
    responses((status = 200, description = "The partner's erasures, oldest first", body = Items<Erasure>)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Items<Erasure>>, ApiError> {
    let partner = path_id(&id, "partner")?;
    Ok(Items::json(state.erasures.list(partner).await?))
}

#[utoipa::path(get, path = "/api/v1/partners/{id}/erasures/{eid}", tag = "partners",
    params(("id" = Uuid, Path, description = "The partner's id"),
           ("eid" = Uuid, Path, description = "The erasure's id")),
    responses((status = 200, description = "The erasure, with its receipt once done", body = Erasure)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    _: Admin,
    Path((id, eid)): Path<(String, String)>,
) -> Result<Json<Erasure>, ApiError> {
    let partner = path_id(&id, "partner")?;
    let erasure = path_id(&eid, "erasure")?;
    Ok(Json(state.erasures.get(partner, erasure).await?))
}

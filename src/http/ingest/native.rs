//! `POST /api/v1/events`: one event in the native format.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::request::Parts;
use axum::response::Response;
use bytes::Bytes;

use super::{IngestRequest, fields_of};
use crate::http::extract::{BodyKind, json_bytes, presented_credential};
use crate::http::problem::ApiError;
use crate::http::state::AppState;

pub async fn single(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request = IngestRequest::open(&state, &parts, presented_credential(&parts)).await?;
    let bytes = json_bytes(&parts.headers, body, BodyKind::JsonOrBeacon)?;
    let fields = fields_of(&bytes, "the event")?;
    request.accept_one(&state, &fields).await
}

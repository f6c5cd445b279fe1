//! Segment's endpoints: the tracking API (`/v1/track` … `/v1/alias`, `/v1/batch`,
//! `/v1/import`), analytics.js's short forms (`/v1/t` … `/v1/s`, `/v1/b`: `text/plain`
//! bodies with the write key inside) and the settings analytics.js loads first
//! (`settings`). Messages are translated by `ingest::format::segment` and go through the
//! one pipeline; answers are Segment's: `200 {"success": true}`.
//!
//! The write key is an `ingest` key, as the Basic-auth username, a bearer token or
//! `writeKey` in the body. A key in the headers is checked before the body is read; a body
//! holding its own key is read from the unknown senders' budget, as on the legacy endpoint.

pub(crate) mod settings;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use serde::Serialize;

use super::{answered, request};
use crate::error::FieldError;
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::ingest::Verdict;
use crate::ingest::format::segment::{Segment, SegmentCall};

/// Every Segment route, for `http::router` to merge.
pub fn routes() -> Router<Arc<AppState>> {
    let mut router = Router::new()
        .route("/v1/batch", post(batch))
        .route("/v1/import", post(batch))
        .route("/v1/b", post(batch))
        .route("/v1/projects/{write_key}/settings", get(settings::settings));
    for call in SegmentCall::ALL {
        let short_form = &call.name()[..1];
        router = router
            .route(&format!("/v1/{}", call.name()), single_call(call))
            .route(&format!("/v1/{short_form}"), single_call(call));
    }
    router
}

fn single_call(call: SegmentCall) -> MethodRouter<Arc<AppState>> {
    post(
        move |State(state): State<Arc<AppState>>, parts: Parts, body: Body| async move {
            single(&state, &parts, body, call).await
        },
    )
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Success {
    success: bool,
    /// The messages of a batch that were refused (absent when none was): the others are
    /// stored, and the answer stays a success so the library does not resend them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rejected: Vec<RefusedMessage>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RefusedMessage {
    index: usize,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

async fn single(
    state: &AppState,
    parts: &Parts,
    body: Body,
    call: SegmentCall,
) -> Result<Response, ApiError> {
    let format = Segment::message(call, &state.config);
    let request = request(state, parts, body);
    let submitted = state.submission().one(request, &format).await?;
    Ok(answered(submitted, StatusCode::OK, |_| success(Vec::new())))
}

async fn batch(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let format = Segment::batch(&state.config);
    let request = request(&state, &parts, body);
    let submitted = state.submission().batch(request, &format).await?;
    Ok(answered(submitted, StatusCode::OK, |verdicts| {
        success(
            verdicts
                .into_iter()
                .enumerate()
                .filter_map(RefusedMessage::of)
                .collect(),
        )
    }))
}

impl RefusedMessage {
    /// A refused message of a batch that was stored in part (the others).
    fn of((index, verdict): (usize, Verdict)) -> Option<RefusedMessage> {
        let Verdict::Refused(refusal) = verdict else {
            return None;
        };
        let error = ApiError::from(refusal);
        Some(RefusedMessage {
            index,
            status: error.status().as_u16(),
            detail: error.detail,
            errors: error.errors,
        })
    }
}

fn success(rejected: Vec<RefusedMessage>) -> Success {
    Success {
        success: true,
        rejected,
    }
}

//! Health and metrics endpoints (no credentials). `/health` on the main listener is for
//! anyone: it names a failing component but never its error text (a driver's message can
//! name hosts, keyspaces, users), which goes to the log. The detailed `/health`, with that
//! text, and `/metrics`, with partner ids and volumes, are for the monitoring network: on
//! `telemetry.metrics_listen` when it is set (see `http::operations_router`).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::http::openapi::{Health, HealthStatus};
use crate::http::state::AppState;

const STORE_PING_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Status {
    Up,
    Degraded,
    Down,
    Disabled,
}

#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "The process is up", body = HealthStatus)))]
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "up"}))
}

/// Who reads a `/health` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// Whoever reaches the main listener: a generic word for a component's error.
    Anyone,
    /// The monitoring network behind `telemetry.metrics_listen`: the error text itself.
    Operators,
}

/// What `/health` says of a store that did not answer `ping`.
const STORE_UNAVAILABLE: &str = "unavailable";
const STORE_TIMED_OUT: &str = "the store did not answer in time";

async fn store_status(state: &AppState, audience: Audience) -> (Status, Option<String>) {
    match tokio::time::timeout(STORE_PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => (Status::Up, None),
        Ok(Err(error)) => {
            tracing::warn!(%error, "health check: the store is down");
            let shown = match audience {
                Audience::Anyone => STORE_UNAVAILABLE.to_string(),
                Audience::Operators => error.to_string(),
            };
            (Status::Down, Some(shown))
        }
        Err(_) => (Status::Down, Some(STORE_TIMED_OUT.to_string())),
    }
}

#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses((status = 200, description = "Ready for traffic", body = HealthStatus),
              (status = 503, description = "Not ready (store down, or draining)", body = HealthStatus)))]
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let (store, _) = store_status(&state, Audience::Anyone).await;
    if state.is_draining() || store != Status::Up {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "down"})),
        )
            .into_response();
    }
    Json(json!({"status": "up"})).into_response()
}

async fn redis_status(state: &AppState) -> Status {
    match &state.redis {
        None => Status::Disabled,
        Some(redis) if redis.ping().await => Status::Up,
        Some(_) => Status::Down,
    }
}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Up or degraded, by component", body = Health),
              (status = 503, description = "Down", body = Health)))]
pub async fn overall(State(state): State<Arc<AppState>>) -> Response {
    health(&state, Audience::Anyone).await
}

/// `/health` on `telemetry.metrics_listen`: as `overall`, with the store's error text.
pub async fn detailed(State(state): State<Arc<AppState>>) -> Response {
    health(&state, Audience::Operators).await
}

async fn health(state: &AppState, audience: Audience) -> Response {
    let (store, store_error) = store_status(state, audience).await;
    let redis = redis_status(state).await;
    let queue = state.ingestor.queue();
    let (depth, capacity) = (queue.depth(), queue.capacity());
    let queue_status = if depth >= capacity {
        Status::Degraded
    } else {
        Status::Up
    };
    let overall = if store != Status::Up || state.is_draining() {
        Status::Down
    } else if queue_status != Status::Up || redis == Status::Down {
        Status::Degraded
    } else {
        Status::Up
    };
    let body = json!({
        "status": overall,
        "components": {
            "store": {"status": store, "backend": state.store.backend_name(), "error": store_error},
            "redis": {"status": redis, "fallback": if redis == Status::Down { "in-process limits and caches" } else { "" }},
            "queue": {"status": queue_status, "depth": depth, "capacity": capacity, "bytes": queue.bytes()},
        }
    });
    let code = if overall == Status::Down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let queue = state.ingestor.queue();
    state.metrics.queue_depth.set(queue.depth() as i64);
    let oldest_age = queue.unstored().oldest().map_or(0.0, |oldest| {
        (chrono::Utc::now() - oldest).num_milliseconds().max(0) as f64 / 1e3
    });
    state.metrics.queue_oldest_age.set(oldest_age);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

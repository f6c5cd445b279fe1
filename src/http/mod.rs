//! The HTTP surface: routes, layers, extractors (`extract`), the one error mapping
//! (`problem`), and one file per resource; `ingest/` holds one file per wire format;
//! `openapi` describes them all (`/openapi.json`, `/docs`).
//! Handlers extract, call a use-case, and respond.

mod audit;
pub mod body;
mod breakdown;
mod client_address;
pub mod correlation;
mod dashboard;
mod erasures;
pub(crate) mod events;
mod export;
mod extract;
pub(crate) mod fuzz;
mod health;
pub(crate) mod ingest;
mod keys;
mod observe;
pub mod openapi;
mod partners;
mod people;
mod person;
pub mod problem;
mod read_scope;
mod reports;
mod respond;
mod schemas;
pub mod server;
pub mod state;
mod subsystems;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method};
use axum::middleware;
use axum::routing::{delete, get, post, put};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::decompression::RequestDecompressionLayer;

use crate::error::ErrorKind;
use crate::http::problem::ApiError;
use crate::http::state::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    let single_limit = state.config.http.max_request_size.as_u64() as usize;
    let api = Router::new()
        .route("/api/v1/events", post(ingest::single).get(events::list))
        .route("/api/v1/events/batch", post(ingest::batch))
        .route("/api/events/ingest", post(ingest::legacy))
        .route(
            "/api/v1/partners",
            post(partners::create).get(partners::list),
        )
        .route(
            "/api/v1/partners/{id}",
            get(partners::get)
                .patch(partners::update)
                .delete(partners::deactivate),
        )
        .route(
            "/api/v1/partners/{id}/erasures",
            post(erasures::request).get(erasures::list),
        )
        .route("/api/v1/partners/{id}/erasures/{eid}", get(erasures::get))
        .route("/api/v1/audit", get(audit::audit))
        .route(
            "/api/v1/partners/{id}/dimensions",
            put(partners::declare_dimensions),
        )
        .route(
            "/api/v1/partners/{id}/subsystems",
            post(subsystems::create).get(subsystems::list),
        )
        .route(
            "/api/v1/subsystems/{id}",
            get(subsystems::get)
                .patch(subsystems::update)
                .delete(subsystems::deactivate),
        )
        .route(
            "/api/v1/partners/{id}/api-keys",
            post(keys::create).get(keys::list),
        )
        .route("/api/v1/api-keys/{id}/rotate", post(keys::rotate))
        .route("/api/v1/api-keys/{id}", delete(keys::revoke))
        .route("/api/v1/schemas", get(schemas::list_global))
        .route(
            "/api/v1/schemas/{event_type}",
            get(schemas::get_global)
                .put(schemas::put_global)
                .delete(schemas::delete_global),
        )
        .route("/api/v1/partners/{id}/schemas", get(schemas::list_partner))
        .route(
            "/api/v1/partners/{id}/schemas/{event_type}",
            get(schemas::get_partner)
                .put(schemas::put_partner)
                .delete(schemas::delete_partner),
        )
        .route("/api/v1/reports/summary", get(reports::summary))
        .route("/api/v1/reports/timeseries", get(reports::timeseries))
        .route("/api/v1/reports/breakdown", get(breakdown::breakdown))
        .route("/api/v1/reports/funnel", get(people::funnel))
        .route("/api/v1/reports/retention", get(people::retention))
        .route("/api/v1/people/{userId}", get(person::person))
        .route(
            "/api/v1/export",
            get(export::export).layer(CompressionLayer::new().gzip(true)),
        )
        .route("/health", get(health::overall))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(openapi::docs_page))
        .merge(ingest::segment_routes())
        .merge(dashboard::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    // With a listener of their own, metrics are not served to the world as well.
    let api = if state.config.telemetry.metrics_listen.is_none() {
        api.route("/metrics", get(health::metrics))
    } else {
        api
    };

    api.layer(DefaultBodyLimit::max(single_limit))
        .layer(RequestDecompressionLayer::new())
        .layer(cors())
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            client_address::middleware,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            observe::middleware,
        ))
        .layer(middleware::from_fn(correlation::middleware))
        .with_state(state)
}

/// What `telemetry.metrics_listen` serves, for the monitoring network only: `/metrics`
/// (partner ids and their volumes), the detailed `/health` (the store's error text), and
/// the probes. No credentials, no bodies read, no CORS: nothing here is for browsers.
pub fn operations_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .route("/health", get(health::detailed))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            observe::middleware,
        ))
        .layer(middleware::from_fn(correlation::middleware))
        .with_state(state)
}

/// Browsers may call every endpoint from any origin: credentials travel in headers (or
/// `?apiKey=` to ingest endpoints), never cookies, so there is nothing ambient for another site to abuse.
fn cors() -> CorsLayer {
    let header = HeaderName::from_static;
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header("content-type"),
            header("content-encoding"),
            header("authorization"),
            header("x-api-key"),
            header("x-correlation-id"),
            header("x-request-timestamp"),
            header("x-request-nonce"),
            // analytics.js marks its retries (Segment's libraries send it).
            header("x-retry-count"),
        ])
        .expose_headers([
            header("x-correlation-id"),
            header("retry-after"),
            header("ratelimit-limit"),
            header("ratelimit-remaining"),
            header("ratelimit-reset"),
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        "this endpoint does not support that method",
    )
}

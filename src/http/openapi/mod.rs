//! The OpenAPI 3.1 description, generated from the handlers' `#[utoipa::path]` attributes
//! and the wire types' `ToSchema` derives, served at `/openapi.json`, with an offline
//! reference page at `/docs` (our own small page: no CDN, no bundled Swagger UI).
//!
//! What every operation shares is added here once: the problem+json answers (by what the
//! operation has: credentials, a body, path ids, ingestion), the security schemes, and
//! Segment's routes, one per call and short form, from the same list the router uses.

mod wire;

pub use wire::*;

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::http::ingest::segment::Success;
use crate::http::problem::PROBLEM_JSON;
use crate::ingest::format::segment::SegmentCall;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Volcanion Tracking",
        description = "Event ingestion (native, batch, legacy and Segment's HTTP API), tenant and \
            key management, event structures, stored events and reports. Errors are \
            `application/problem+json` (RFC 9457); every answer carries `X-Correlation-ID`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::ingest::native::single,
        super::ingest::batch::batch,
        super::ingest::legacy::legacy,
        segment_call,
        segment_batch,
        super::ingest::segment::settings::settings,
        super::partners::create,
        super::partners::list,
        super::partners::get,
        super::partners::update,
        super::partners::deactivate,
        super::partners::declare_dimensions,
        super::erasures::request,
        super::erasures::list,
        super::erasures::get,
        super::audit::audit,
        super::subsystems::create,
        super::subsystems::list,
        super::subsystems::get,
        super::subsystems::update,
        super::subsystems::deactivate,
        super::keys::create,
        super::keys::list,
        super::keys::rotate,
        super::keys::revoke,
        super::schemas::list_global,
        super::schemas::get_global,
        super::schemas::put_global,
        super::schemas::delete_global,
        super::schemas::list_partner,
        super::schemas::get_partner,
        super::schemas::put_partner,
        super::schemas::delete_partner,
        super::events::list,
        super::reports::summary,
        super::reports::timeseries,
        super::breakdown::breakdown,
        super::people::funnel,
        super::people::retention,
        super::person::person,
        super::export::export,
        super::health::overall,
        super::health::live,
        super::health::ready,
        super::health::metrics,
        document,
        docs_page,
    ),
    components(schemas(Problem)),
    modifiers(&SecuritySchemes, &SegmentRoutes, &SharedAnswers),
    tags(
        (name = "ingestion", description = "Sending events (API key with scope `ingest`)"),
        (name = "segment", description = "Segment's HTTP Tracking API and analytics.js"),
        (name = "partners", description = "Tenants (admin token)"),
        (name = "subsystems", description = "A partner's sources of events (admin token)"),
        (name = "api-keys", description = "Keys, shown in clear once (admin token)"),
        (name = "schemas", description = "Event structures: JSON Schemas for `properties` (admin token)"),
        (name = "reading", description = "Stored events and reports (admin token, or a `read` key for its own partner)"),
        (name = "operations", description = "Health, metrics and this description (no credentials)"),
    )
)]
pub struct ApiDoc;

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .expect("the description serializes")
});

/// The description as built from the code.
#[cfg(test)]
pub fn description() -> Document {
    ApiDoc::openapi()
}

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This description (OpenAPI 3.1)", body = Object)))]
pub async fn document() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "A reference page rendering this description, offline", body = String, content_type = "text/html")))]
pub async fn docs_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("docs.html"),
    )
        .into_response()
}

/// Described once as `/v1/track`, copied to every Segment call and short form.
#[utoipa::path(post, path = "/v1/track", tag = "segment",
    request_body(content = SegmentMessage, content_type = "application/json",
                 description = "One Segment message (32 KB at most); `text/plain` from analytics.js"),
    responses((status = 200, description = "Stored (Segment's answer)", body = Success)),
    security((), ("basic" = []), ("bearer" = [])))]
#[allow(
    dead_code,
    reason = "describes the routes `ingest::segment_routes` makes per call"
)]
fn segment_call() {}

/// Described once as `/v1/batch`, copied to `/v1/import` and `/v1/b`.
#[utoipa::path(post, path = "/v1/batch", tag = "segment",
    request_body(content = SegmentBatch, content_type = "application/json",
                 description = "Up to 2,500 messages, 500 KB"),
    responses((status = 200, description = "Stored; refused messages are listed", body = Success)),
    security((), ("basic" = []), ("bearer" = [])))]
#[allow(
    dead_code,
    reason = "describes the batch routes of `ingest::segment_routes`"
)]
fn segment_batch() {}

/// The Segment paths the router serves besides `/v1/track` and `/v1/batch`.
pub fn segment_copies() -> Vec<(&'static str, String)> {
    let mut copies = vec![
        ("/v1/batch", "/v1/import".to_string()),
        ("/v1/batch", "/v1/b".to_string()),
    ];
    for call in SegmentCall::ALL {
        copies.push(("/v1/track", format!("/v1/{}", &call.name()[..1])));
        if call != SegmentCall::Track {
            copies.push(("/v1/track", format!("/v1/{}", call.name())));
        }
    }
    copies
}

struct SegmentRoutes;

impl Modify for SegmentRoutes {
    fn modify(&self, openapi: &mut Document) {
        for (template, path) in segment_copies() {
            if let Some(item) = openapi.paths.paths.get(template).cloned() {
                openapi.paths.paths.insert(path, item);
            }
        }
    }
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description =
            Some("The admin token (`auth.admin_token`), or an API key (`vt_…`)".to_string());
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description =
            Some("Segment style: the write key (an `ingest` API key) as the username".to_string());
        let schemes = [
            ("bearer", SecurityScheme::Http(bearer)),
            (
                "apiKey",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "X-API-Key",
                    "An API key (`vt_…`)",
                ))),
            ),
            (
                "apiKeyQuery",
                SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                    "apiKey",
                    "An `ingest` key in the URL, for `navigator.sendBeacon`",
                ))),
            ),
            ("basic", SecurityScheme::Http(basic)),
        ];
        for (name, scheme) in schemes {
            components.add_security_scheme(name, scheme);
        }
    }
}

struct SharedAnswers;

impl Modify for SharedAnswers {
    fn modify(&self, openapi: &mut Document) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, operation) in operations_mut(item) {
                operation.operation_id = Some(operation_id(method, path));
                add_problem_answers(path, operation);
            }
        }
    }
}

fn operations_mut(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("patch", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| Some((method, operation?)))
    .collect()
}

/// `getApiV1PartnersId` for `GET /api/v1/partners/{id}`: unique, stable, readable.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for word in path.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            id.push(first.to_ascii_uppercase());
            id.extend(chars);
        }
    }
    id
}

fn add_problem_answers(path: &str, operation: &mut Operation) {
    let secured = operation.security.as_ref().is_some_and(|requirements| {
        requirements
            .iter()
            .any(|requirement| *requirement != SecurityRequirement::default())
    });
    let tagged = |tag: &str| {
        operation
            .tags
            .as_ref()
            .is_some_and(|tags| tags.iter().any(|named| named == tag))
    };
    let ingests = tagged("ingestion") || tagged("segment");
    let operations = tagged("operations");
    let has_body = operation.request_body.is_some();
    let answers = [
        (
            !operations,
            "400",
            "The request is invalid (`errors` names each field)",
        ),
        (
            secured || ingests,
            "401",
            "No valid credential (missing, unknown, revoked or expired)",
        ),
        (
            secured || ingests,
            "403",
            "The credential may not do this (scope, partner or subsystem)",
        ),
        (path.contains('{'), "404", "No such resource"),
        (
            has_body,
            "413",
            "The body is larger than this endpoint takes",
        ),
        (has_body, "415", "The body is not JSON"),
        (
            ingests,
            "409",
            "`X-Request-Nonce` was seen before within the window",
        ),
        (
            ingests,
            "429",
            "Over the key's or partner's rate (`Retry-After`, `RateLimit-*`)",
        ),
        (
            !operations,
            "503",
            "Overloaded or the store is unavailable (`Retry-After`)",
        ),
        (true, "default", "Any other failure"),
    ];
    for (applies, status, description) in answers {
        if applies && !operation.responses.responses.contains_key(status) {
            operation
                .responses
                .responses
                .insert(status.to_string(), problem_answer(description).into());
        }
    }
}

fn problem_answer(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

#[cfg(test)]
mod tests;

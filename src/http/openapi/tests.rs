//! The description can't drift from the router (every route literal in `src/http` is
//! described; `tests/api/openapi.rs` checks the other way, over HTTP), and the schemas
//! match what the code really sends.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use axum::response::IntoResponse;
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::*;
use crate::error::ErrorKind;
use crate::http::problem::ApiError;
use crate::reports::{Bucket, Interval, Summary, Timeseries};

fn document_json() -> Value {
    serde_json::from_str(&ApiDoc::openapi().to_json().unwrap()).unwrap()
}

fn described_paths() -> BTreeSet<String> {
    description().paths.paths.keys().cloned().collect()
}

/// Every literal path given to `Router::route` in the files of `src/http`.
fn route_literals(folder: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            route_literals(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            let source = std::fs::read_to_string(&path).unwrap();
            for piece in source.split(".route(").skip(1) {
                if let Some(quoted) = piece.trim_start().strip_prefix("\"/") {
                    found.insert(format!("/{}", quoted.split('"').next().unwrap()));
                }
            }
        }
    }
}

#[test]
fn every_route_in_the_router_is_described() {
    let mut routes = BTreeSet::new();
    route_literals(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http"),
        &mut routes,
    );
    assert!(routes.contains("/api/v1/partners"), "{routes:?}");
    // The dashboard is a page and its static files for browsers, not part of the API.
    routes.retain(|route| route != "/dashboard" && !route.starts_with("/dashboard/"));
    let described = described_paths();
    let missing: Vec<_> = routes.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI description (add #[utoipa::path] and list them in ApiDoc): {missing:?}"
    );
}

#[test]
fn every_segment_call_and_short_form_is_described() {
    let described = described_paths();
    for call in SegmentCall::ALL {
        for path in [
            format!("/v1/{}", call.name()),
            format!("/v1/{}", &call.name()[..1]),
        ] {
            assert!(described.contains(&path), "{path}");
        }
    }
}

#[test]
fn is_openapi_3_1_with_unique_operation_ids_and_the_security_schemes() {
    let document = document_json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut ids = BTreeSet::new();
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let id = operation["operationId"].as_str().unwrap().to_string();
            assert!(ids.insert(id.clone()), "duplicate operationId {id}");
        }
    }
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    for scheme in ["bearer", "apiKey", "apiKeyQuery", "basic"] {
        assert!(schemes.contains_key(scheme), "{scheme}");
    }
    assert_eq!(
        document["paths"]["/api/v1/partners"]["post"]["responses"]["401"]["content"][PROBLEM_JSON]
            ["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
}

/// Validates `instance` against the component schema `name` of the description.
fn assert_matches(name: &str, instance: &Value) {
    let document = document_json();
    let schema = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": document["components"],
    });
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{name} does not describe {instance}: {errors:?}"
    );
}

#[tokio::test]
async fn problem_describes_the_error_bodies() {
    for error in [
        ApiError::field("eventType", "must not be blank"),
        ApiError::new(ErrorKind::Unavailable, "down"),
    ] {
        let response = error.into_response();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_matches("Problem", &serde_json::from_slice(&body).unwrap());
    }
}

#[test]
fn the_report_schemas_describe_real_reports() {
    let at = Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap();
    let summary = Summary {
        partner_id: Uuid::nil(),
        subsystem_id: Some(Uuid::nil()),
        from: at,
        to: at,
        total_events: 3,
        valid_events: 2,
        invalid_events: 1,
        unique_users: 2,
        event_counts: BTreeMap::from([("page_view".to_string(), 3)]),
        subsystem_counts: BTreeMap::from([(Uuid::nil(), 3)]),
        visits: Some(2),
        bounce_rate: Some(0.5),
        visit_duration_seconds: None,
        data_as_of: at,
    };
    assert_matches("SummaryReport", &serde_json::to_value(&summary).unwrap());
    let series = Timeseries {
        interval: Interval::Day,
        tz: "Europe/Berlin".to_string(),
        buckets: vec![Bucket {
            start: at,
            local_start: at.fixed_offset(),
            count: 3,
            unique_users: 2,
            by_type: BTreeMap::from([("page_view".to_string(), 3)]),
        }],
        data_as_of: at,
    };
    assert_matches("TimeseriesReport", &serde_json::to_value(&series).unwrap());
}

//! `/openapi.json` against the router it describes, over HTTP: every described operation
//! is routed, and every other method on a described path is refused as not allowed. (The
//! unit tests of `http::openapi` check that every route in the code is described.)

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{Backend, spawn_app};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[tokio::test]
async fn every_described_operation_is_routed_and_no_other_method_is() {
    let app = spawn_app(Backend::Embedded).await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() > 30, "{}", paths.len());
    let client = reqwest::Client::new();
    for (template, item) in paths {
        // Any id will do: routing happens before the handler looks at it.
        let path = template
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "00000000-0000-0000-0000-000000000000"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in METHODS {
            let described = item.get(method).is_some();
            let answer = client
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    app.url(&path),
                )
                .send()
                .await
                .unwrap();
            let status = answer.status();
            let body = answer.text().await.unwrap_or_default();
            if described {
                assert!(
                    status != StatusCode::METHOD_NOT_ALLOWED && !body.contains("no such endpoint"),
                    "{method} {template} is described but not routed: {status} {body}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {template} is routed but not described"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_reference_page_is_served_without_any_outside_asset() {
    let app = spawn_app(Backend::Embedded).await;
    let response = app.get("/docs").await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains("/openapi.json"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page loads nothing from elsewhere"
    );
}

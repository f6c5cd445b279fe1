//! `load-tests/scenarios.json` is the one description both load tools run: the k6 script
//! and the wrk/vegeta runner read it and name no endpoint of their own, and every request
//! it describes is answered as it expects by the real service, over HTTP, with the bodies
//! built the way both tools build them.

use chrono::{Duration, DurationRound, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, spawn_app};

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The body of a request as both tools build it: `{i}` becomes the event's index in its
/// batch (1-based), or 123 for a single event.
fn body_of(spec: &Value, request: &Value) -> Option<String> {
    let events = request["events"].as_u64().unwrap_or(0);
    if events == 0 {
        return None;
    }
    let event = |i: u64| -> Value {
        serde_json::from_str(&spec["event"].to_string().replace("{i}", &i.to_string())).unwrap()
    };
    let body = if request["path"].as_str().unwrap().ends_with("/batch") {
        json!({ "events": (1..=events).map(event).collect::<Vec<_>>() })
    } else {
        event(123)
    };
    Some(body.to_string())
}

#[test]
fn both_load_tools_run_the_shared_description_and_name_no_endpoint_of_their_own() {
    let k6 = read("load-tests/k6/volcanion.js");
    let runner = read("load-tests/scenario.sh");
    assert!(
        k6.contains("open('../scenarios.json')"),
        "k6 reads the description"
    );
    assert!(
        runner.contains("SPEC=load-tests/scenarios.json"),
        "the runner reads it"
    );
    for script in [&k6, &runner] {
        assert!(
            !script.contains("/api/v1/"),
            "endpoints come from scenarios.json only"
        );
    }
    let spec: Value = serde_json::from_str(&read("load-tests/scenarios.json")).unwrap();
    for (name, scenario) in spec["scenarios"].as_object().unwrap() {
        for entry in scenario["mix"].as_array().unwrap() {
            let request = entry["request"].as_str().unwrap();
            assert!(
                spec["requests"].get(request).is_some(),
                "scenario {name} names an unknown request {request}"
            );
        }
        assert!(
            scenario["closed"].is_object() || scenario["open"].is_object(),
            "scenario {name} says how load arrives"
        );
        assert!(
            scenario["thresholds"]["max_failed_ratio"].is_number(),
            "{name} has thresholds"
        );
    }
    for name in ["single", "batch", "dashboard", "soak", "open_loop"] {
        assert!(spec["scenarios"].get(name).is_some(), "scenario {name}");
    }
}

#[tokio::test]
async fn every_described_request_is_answered_as_the_scenarios_expect() {
    let spec: Value = serde_json::from_str(&read("load-tests/scenarios.json")).unwrap();
    let app = spawn_app(Backend::Embedded).await;
    let partner = app.create_partner("load").await;
    let partner_id = partner["id"].as_str().unwrap();
    app.create_subsystem(partner_id, "web").await;
    let key = app
        .create_key(partner_id, json!({ "scopes": ["ingest", "read"] }))
        .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let to = Utc::now().duration_trunc(Duration::hours(1)).unwrap() + Duration::hours(1);
    let from = to - Duration::hours(24);
    // As both tools write times: UTC with `Z`, nothing to escape in a query.
    let client = reqwest::Client::new();
    let mut sent_events = 0;
    for (id, request) in spec["requests"].as_object().unwrap() {
        let path = request["path"]
            .as_str()
            .unwrap()
            .replace("{from}", &from.to_rfc3339_opts(SecondsFormat::Secs, true))
            .replace("{to}", &to.to_rfc3339_opts(SecondsFormat::Secs, true));
        let method = Method::from_bytes(request["method"].as_str().unwrap().as_bytes()).unwrap();
        let mut call = client
            .request(method, app.url(&path))
            .header("X-API-Key", &key)
            .header("Content-Type", "application/json");
        if let Some(body) = body_of(&spec, request) {
            call = call.body(body);
            sent_events += request["events"].as_u64().unwrap();
        }
        let answer = call.send().await.unwrap();
        let expected = StatusCode::from_u16(request["expect"].as_u64().unwrap() as u16).unwrap();
        let status = answer.status();
        assert_eq!(
            status,
            expected,
            "{id}: {}",
            answer.text().await.unwrap_or_default()
        );
        if id == "batch" {
            let accepted: Value = answer.json().await.unwrap();
            assert_eq!(accepted["accepted"], 100, "{accepted}");
        }
    }
    let summary: Value = client
        .get(app.url(&format!(
            "/api/v1/reports/summary?from={}&to={}",
            from.to_rfc3339_opts(SecondsFormat::Secs, true),
            to.to_rfc3339_opts(SecondsFormat::Secs, true)
        )))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(summary["totalEvents"], sent_events, "{summary}");
    assert_eq!(summary["invalidEvents"], 0, "{summary}");
}

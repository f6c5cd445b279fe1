//! The real `volcanion` binary, stopped with SIGTERM and started again on the same data
//! dir: every event answered with 202 before the signal must be readable afterwards, even
//! with in-memory acknowledgement (a long linger keeps them queued when the signal comes:
//! shutdown drains the queue). Durable 202s under load are drilled in `tests/drills.rs`.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, id_of};
use crate::process::{start, terminate};

async fn events_accepted_before_sigterm_are_readable_after_restart(backend: Backend) {
    let data_dir = tempfile::TempDir::new().unwrap();
    let queued = [
        ("VOLCANION_INGEST__ACKNOWLEDGE", "queued"),
        ("VOLCANION_INGEST__LINGER", "2s"),
    ];
    let first = start(data_dir.path(), backend, &queued).await;
    let partner_id = id_of(&first.app.create_partner("acme").await);
    first.app.create_subsystem(&partner_id, "web").await;
    let key = first
        .app
        .create_key(&partner_id, json!({"scopes": ["ingest", "read"]}))
        .await;
    let key = key["key"].as_str().unwrap();

    let mut accepted = HashSet::new();
    for round in 0..5 {
        let events: Vec<Value> = (0..100)
            .map(|i| json!({"eventType": "e", "userId": format!("u{i}"), "subsystem": "web", "eventId": format!("r{round}-{i}")}))
            .collect();
        let response = first.app.send_batch(key, &events).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        accepted.extend(
            body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["eventId"].as_str().unwrap().to_string()),
        );
    }
    for i in 0..20 {
        let single = json!({"eventType": "single", "anonymousId": "a", "subsystem": "web", "eventId": format!("s{i}")});
        let response = first.app.send_event(key, &single).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        accepted.insert(format!("s{i}"));
    }
    terminate(first).await;

    let second = start(data_dir.path(), backend, &[]).await;
    let mut stored = HashSet::new();
    for item in second.app.all_events(key, "limit=1000").await {
        assert!(
            stored.insert(item["eventId"].as_str().unwrap().to_string()),
            "no duplicates"
        );
    }
    assert_eq!(stored.len(), 520);
    assert_eq!(stored, accepted);
    terminate(second).await;
}

crate::backend_tests!(events_accepted_before_sigterm_are_readable_after_restart,);

//! Event ids chosen by clients and made by the server live in namespaces of their own: a
//! client id never replaces an event stored under a server-made id.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, id_of, spawn_app};

const DAY: &str = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";

/// A key pinned to subsystem B sends an event whose `eventId` and time are those of a
/// server-made event of subsystem A: A's event stays as it was, and nothing is added.
async fn a_client_id_never_replaces_a_server_made_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("namespaces").await;
    let other = app
        .create_subsystem(&tenant.partner_id, "namespaces-app")
        .await;
    let pinned_to_other = app
        .create_key(
            &tenant.partner_id,
            json!({"scopes": ["ingest"], "subsystemId": id_of(&other)}),
        )
        .await;
    let timestamp = "2026-11-20T10:30:00.123Z";
    let original = json!({"eventType": "order", "userId": "u1", "timestamp": timestamp,
                          "subsystem": tenant.subsystem_code, "properties": {"total": 30}});
    let response = app.send_event(&tenant.key, &original).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let server_id = response.json::<Value>().await.unwrap()["eventId"]
        .as_str()
        .unwrap()
        .to_string();

    let forged = json!({"eventType": "refund", "eventId": server_id, "userId": "mallory",
                        "timestamp": timestamp, "properties": {"total": -30}});
    let response = app
        .send_event(pinned_to_other["key"].as_str().unwrap(), &forged)
        .await;
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "a duplicate, as ever"
    );

    let stored = app.all_events(&tenant.key, DAY).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["eventId"], server_id.as_str());
    assert_eq!(stored[0]["subsystemId"], tenant.subsystem_id.as_str());
    assert_eq!(stored[0]["eventType"], "order");
    assert_eq!(stored[0]["properties"], json!({"total": 30}));
    let in_other = app
        .all_events(&tenant.key, &format!("{DAY}&subsystemId={}", id_of(&other)))
        .await;
    assert!(in_other.is_empty(), "{in_other:?}");
    let summary = app.summary(&tenant.key, DAY).await;
    assert_eq!(summary["totalEvents"], 1, "{summary}");
    assert_eq!(summary["eventCounts"], json!({"order": 1}), "{summary}");
}

crate::backend_tests!(a_client_id_never_replaces_a_server_made_event);

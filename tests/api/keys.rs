use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, Tenant, assert_problem, error_fields, event, id_of, spawn_app};

const NOW: &str = "2026-11-20T10:00:00Z";

fn now_event(tenant: &Tenant) -> Value {
    let mut body = event(tenant, "page_view", "u1", NOW);
    body.as_object_mut().unwrap().remove("timestamp");
    body
}

async fn a_key_is_shown_once_and_stored_only_as_a_hash(backend: Backend) {
    let app = spawn_app(backend).await;
    let partner = id_of(&app.create_partner("acme").await);
    let created = app
        .create_key(&partner, json!({"name": "web", "scopes": ["ingest"]}))
        .await;
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with(created["keyPrefix"].as_str().unwrap()));
    for field in [
        "id",
        "keyPrefix",
        "scopes",
        "subsystemId",
        "expiresAt",
        "createdAt",
    ] {
        assert!(created.get(field).is_some(), "missing {field}");
    }
    let listed = app.keys(&partner).await;
    let text = listed.to_string();
    // vt_<hex keyId>_<secret>: the secret is everything after the second `_`.
    let secret = key.splitn(3, '_').nth(2).unwrap();
    assert!(!text.contains(secret), "listing leaks the secret");
    assert!(!text.contains("secretHash") && !text.contains("\"key\""));
    assert_eq!(listed["items"][0]["status"], "active");
}

async fn key_creation_validates_its_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let acme = id_of(&app.create_partner("acme").await);
    let globex = id_of(&app.create_partner("globex").await);
    let foreign_subsystem = id_of(&app.create_subsystem(&globex, "shop").await);
    let response = app
        .post_key(&acme, &json!({"scopes": [], "expiresAt": "2001-01-01T00:00:00Z", "subsystemId": foreign_subsystem}))
        .await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        error_fields(&problem),
        ["scopes", "expiresAt", "subsystemId"]
    );
    let bad_scope = app.post_key(&acme, &json!({"scopes": ["admin"]})).await;
    assert_problem(bad_scope, StatusCode::BAD_REQUEST).await;
}

async fn wrong_malformed_and_missing_keys_are_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let prefix = &tenant.key[.."vt_".len() + 16];
    let forged = format!("{prefix}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    for key in [forged.as_str(), "vt_garbage", "not-a-key"] {
        let response = app.send_event(key, &now_event(&tenant)).await;
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
    }
    let anonymous = app
        .client
        .post(app.url("/api/v1/events"))
        .json(&now_event(&tenant))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, StatusCode::UNAUTHORIZED).await;
}

async fn repeated_failures_from_one_client_are_throttled_before_hashing(backend: Backend) {
    let app = crate::helpers::TestAppBuilder::new(backend)
        .configure(|config| {
            config.auth.max_failed_attempts_per_minute = 3;
            config.auth.negative_cache_ttl = Duration::ZERO;
        })
        .spawn()
        .await;
    let tenant = app.tenant("acme").await;
    let prefix = &tenant.key[.."vt_".len() + 16];
    let mut statuses = Vec::new();
    for attempt in 0..5 {
        let forged = format!("{prefix}_wrongsecret{attempt}");
        statuses.push(app.send_event(&forged, &now_event(&tenant)).await.status());
    }
    assert_eq!(&statuses[..3], [StatusCode::UNAUTHORIZED; 3]);
    assert_eq!(&statuses[3..], [StatusCode::TOO_MANY_REQUESTS; 2]);
}

async fn the_admin_token_cannot_send_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .json(&now_event(&tenant))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::FORBIDDEN).await;
}

async fn scopes_are_enforced(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let read_only = app
        .create_key(&tenant.partner_id, json!({"scopes": ["read"]}))
        .await;
    let ingest_only = app
        .create_key(&tenant.partner_id, json!({"scopes": ["ingest"]}))
        .await;
    let refused = app
        .send_event(read_only["key"].as_str().unwrap(), &now_event(&tenant))
        .await;
    assert_problem(refused, StatusCode::FORBIDDEN).await;
    let unreadable = app
        .get_events(ingest_only["key"].as_str().unwrap(), "")
        .await;
    assert_problem(unreadable, StatusCode::FORBIDDEN).await;
    let accepted = app
        .send_event(ingest_only["key"].as_str().unwrap(), &now_event(&tenant))
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
}

async fn revoked_keys_stop_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let created = app
        .create_key(&tenant.partner_id, json!({"scopes": ["ingest"]}))
        .await;
    let key = created["key"].as_str().unwrap();
    assert_eq!(
        app.send_event(key, &now_event(&tenant)).await.status(),
        StatusCode::ACCEPTED
    );
    let revoked = app.revoke_key(&id_of(&created)).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let refused = app.send_event(key, &now_event(&tenant)).await;
    let problem = assert_problem(refused, StatusCode::UNAUTHORIZED).await;
    assert!(problem["detail"].as_str().unwrap().contains("revoked"));
}

async fn rotation_without_grace_replaces_the_key_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let created = app
        .create_key(&tenant.partner_id, json!({"scopes": ["ingest"]}))
        .await;
    let old_key = created["key"].as_str().unwrap();
    assert_eq!(
        app.send_event(old_key, &now_event(&tenant)).await.status(),
        StatusCode::ACCEPTED
    );
    let rotated = app.rotate_key(&id_of(&created), None).await;
    assert_eq!(rotated.status(), StatusCode::CREATED);
    let rotated: Value = rotated.json().await.unwrap();
    let new_key = rotated["key"].as_str().unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(rotated["scopes"], json!(["ingest"]));
    assert_eq!(
        app.send_event(new_key, &now_event(&tenant)).await.status(),
        StatusCode::ACCEPTED
    );
    assert_problem(
        app.send_event(old_key, &now_event(&tenant)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn rotation_with_grace_keeps_both_keys_working_until_it_ends(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let created = app
        .create_key(&tenant.partner_id, json!({"scopes": ["ingest"]}))
        .await;
    let old_key = created["key"].as_str().unwrap();
    let grace = json!({"graceSeconds": 3600});
    let rotated: Value = app
        .rotate_key(&id_of(&created), Some(&grace))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.send_event(old_key, &now_event(&tenant)).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        app.send_event(rotated["key"].as_str().unwrap(), &now_event(&tenant))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let listed = app.keys(&tenant.partner_id).await;
    let old = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == created["id"])
        .unwrap()
        .clone();
    assert_eq!(old["replacedBy"], rotated["id"]);
    assert!(
        old["expiresAt"].is_string(),
        "the grace period ends the old key"
    );
    let again = app
        .rotate_key(&id_of(&created), Some(&json!({"graceSeconds": "soon"})))
        .await;
    assert_problem(again, StatusCode::BAD_REQUEST).await;
}

async fn keys_stop_working_when_they_expire(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(1);
    let created = app
        .create_key(
            &tenant.partner_id,
            json!({"scopes": ["ingest"], "expiresAt": expires_at.to_rfc3339()}),
        )
        .await;
    let key = created["key"].as_str().unwrap();
    assert_eq!(
        app.send_event(key, &now_event(&tenant)).await.status(),
        StatusCode::ACCEPTED
    );
    let wait = (expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    let problem = assert_problem(
        app.send_event(key, &now_event(&tenant)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("expired"));
}

async fn deactivating_a_partner_stops_its_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    assert_eq!(
        app.send_event(&tenant.key, &now_event(&tenant))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let deactivated = app.delete_partner(&tenant.partner_id).await;
    assert_eq!(deactivated.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.send_event(&tenant.key, &now_event(&tenant)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_problem(
        app.get_events(&tenant.key, "").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn pinned_keys_send_only_to_their_subsystem_which_can_be_deactivated(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let other = app.create_subsystem(&tenant.partner_id, "backend").await;
    let pinned = app
        .create_key(
            &tenant.partner_id,
            json!({"scopes": ["ingest"], "subsystemId": tenant.subsystem_id}),
        )
        .await;
    let key = pinned["key"].as_str().unwrap();
    let mut implicit = now_event(&tenant);
    implicit.as_object_mut().unwrap().remove("subsystem");
    assert_eq!(
        app.send_event(key, &implicit).await.status(),
        StatusCode::ACCEPTED
    );
    let mut elsewhere = now_event(&tenant);
    elsewhere["subsystem"] = other["code"].clone();
    assert_problem(app.send_event(key, &elsewhere).await, StatusCode::FORBIDDEN).await;

    let deactivate = app.delete_subsystem(&tenant.subsystem_id).await;
    assert_eq!(deactivate.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.send_event(key, &implicit).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_problem(
        app.send_event(&tenant.key, &now_event(&tenant)).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

crate::backend_tests!(
    a_key_is_shown_once_and_stored_only_as_a_hash,
    key_creation_validates_its_fields,
    wrong_malformed_and_missing_keys_are_401,
    repeated_failures_from_one_client_are_throttled_before_hashing,
    the_admin_token_cannot_send_events,
    scopes_are_enforced,
    revoked_keys_stop_at_once,
    rotation_without_grace_replaces_the_key_at_once,
    rotation_with_grace_keeps_both_keys_working_until_it_ends,
    keys_stop_working_when_they_expire,
    deactivating_a_partner_stops_its_keys,
    pinned_keys_send_only_to_their_subsystem_which_can_be_deactivated,
);

//! Issue 9, findings 4 and 5: nobody who knows a key id can lock its genuine key out or
//! make the server hash without bound, a wrong secret costs the same whether the key id
//! exists or not, and a schema deleted and put again is checked as the new one.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::helpers::SchemaScope::Global;
use crate::helpers::{Backend, Tenant, TestApp, TestAppBuilder, event};

const HASHES: &str = "volcanion_auth_hashes_total";

fn now_event(tenant: &Tenant) -> Value {
    let mut body = event(tenant, "page_view", "u1", "2026-11-20T10:00:00Z");
    body.as_object_mut().unwrap().remove("timestamp");
    body
}

/// The key's `vt_<keyId>` part with a secret that is not its own.
fn forged(tenant: &Tenant, attempt: usize) -> String {
    let prefix = &tenant.key[.."vt_".len() + 16];
    format!("{prefix}_wrongsecret{attempt}")
}

/// A client whose connections come from another loopback address than the test's own.
fn client_from(last_octet: u8) -> Client {
    Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet)))
        .build()
        .expect("a client")
}

async fn send_from(client: &Client, app: &TestApp, key: &str, event: &Value) -> StatusCode {
    client
        .post(app.url("/api/v1/events"))
        .header("x-api-key", key)
        .json(event)
        .send()
        .await
        .expect("the request reaches the app")
        .status()
}

async fn hashes(app: &TestApp) -> u64 {
    let metrics = app.metrics().await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(HASHES)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{HASHES} is exported from start:\n{metrics}"))
        .trim()
        .parse()
        .expect("a counter value")
}

async fn wrong_secrets_from_another_address_do_not_lock_out_the_genuine_key(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .configure(|config| config.auth.negative_cache_ttl = Duration::ZERO)
        .spawn()
        .await;
    let tenant = app.tenant("acme").await;
    let attacker = client_from(2);
    for attempt in 0..30 {
        let status = send_from(
            &attacker,
            &app,
            &forged(&tenant, attempt),
            &now_event(&tenant),
        )
        .await;
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&status),
            "attempt {attempt}: {status}"
        );
    }
    let genuine = app.send_event(&tenant.key, &now_event(&tenant)).await;
    assert_eq!(genuine.status(), StatusCode::ACCEPTED);
}

async fn a_verified_key_keeps_working_while_its_key_id_is_attacked(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .configure(|config| {
            // Verdicts are not kept: only the proof of a genuine key can carry it through.
            config.auth.key_cache_ttl = Duration::ZERO;
            config.auth.negative_cache_ttl = Duration::ZERO;
        })
        .spawn()
        .await;
    let tenant = app.tenant("acme").await;
    let first = app.send_event(&tenant.key, &now_event(&tenant)).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    for attempt in 0..30 {
        app.send_event(&forged(&tenant, attempt), &now_event(&tenant))
            .await;
    }
    let after_attack = app.send_event(&tenant.key, &now_event(&tenant)).await;
    assert_eq!(after_attack.status(), StatusCode::ACCEPTED);
}

async fn concurrent_wrong_secrets_never_hash_more_than_the_client_budget(backend: Backend) {
    let budget = 10;
    let app = TestAppBuilder::new(backend)
        .configure(|config| {
            config.auth.max_failed_attempts_per_minute = budget;
            config.auth.negative_cache_ttl = Duration::ZERO;
        })
        .spawn()
        .await;
    let tenant = app.tenant("acme").await;
    assert_eq!(hashes(&app).await, 0);
    let mut attempts = JoinSet::new();
    for attempt in 0..60 {
        let (client, url) = (app.client.clone(), app.url("/api/v1/events"));
        let (key, body) = (forged(&tenant, attempt), now_event(&tenant));
        attempts.spawn(async move {
            let response = client
                .post(url)
                .header("x-api-key", key)
                .json(&body)
                .send()
                .await
                .expect("the request reaches the app");
            let retry_after = response.headers().contains_key("retry-after");
            (response.status(), retry_after)
        });
    }
    let outcomes = attempts.join_all().await;
    // Wrong secrets fail the key's pre-check: none of them reaches PBKDF2 (issue 23).
    assert_eq!(hashes(&app).await, 0);
    let refused = outcomes
        .iter()
        .filter(|(status, retry_after)| *status == StatusCode::TOO_MANY_REQUESTS && *retry_after)
        .count();
    let rejected = outcomes
        .iter()
        .filter(|(status, _)| *status == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!((rejected, refused), (budget as usize, 60 - budget as usize));
}

/// Both fail a pre-check (a stand-in one for the unknown id) and cost no PBKDF2.
async fn unknown_key_ids_cost_what_wrong_secrets_cost(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let tenant = app.tenant("acme").await;
    assert_eq!(hashes(&app).await, 0);
    let unknown = app
        .send_event("vt_0123456789abcdef_notasecret", &now_event(&tenant))
        .await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let wrong = app
        .send_event(&forged(&tenant, 0), &now_event(&tenant))
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(hashes(&app).await, 0);
}

async fn a_schema_deleted_and_put_again_is_checked_as_the_new_one(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let tenant = app.tenant("acme").await;
    let at_least_zero = json!({"mode": "flag", "schema": {
        "type": "object", "properties": {"amount": {"type": "number", "minimum": 0}}
    }});
    let at_most_zero = json!({"mode": "flag", "schema": {
        "type": "object", "properties": {"amount": {"type": "number", "maximum": 0}}
    }});
    let mut negative = event(&tenant, "purchase", "u1", "2026-11-20T10:00:00Z");
    negative["properties"] = json!({"amount": -3});
    negative.as_object_mut().unwrap().remove("timestamp");

    let first = app.put_schema(Global, "purchase", &at_least_zero).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let against_first: Value = app
        .send_event(&tenant.key, &negative)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(against_first["isValid"], false);
    let deleted = app.delete_schema(Global, "purchase").await;
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let second = app.put_schema(Global, "purchase", &at_most_zero).await;
    assert_eq!(second.status(), StatusCode::CREATED);

    let against_second: Value = app
        .send_event(&tenant.key, &negative)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(against_second["isValid"], true, "{against_second}");
}

crate::backend_tests!(
    wrong_secrets_from_another_address_do_not_lock_out_the_genuine_key,
    a_verified_key_keeps_working_while_its_key_id_is_attacked,
    concurrent_wrong_secrets_never_hash_more_than_the_client_budget,
    unknown_key_ids_cost_what_wrong_secrets_cost,
    a_schema_deleted_and_put_again_is_checked_as_the_new_one,
);

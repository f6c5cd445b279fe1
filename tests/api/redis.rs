//! Several instances sharing one real Redis behave as one. Like the Cassandra variants,
//! these tests are listed as ignored by a plain `cargo test`; `--include-ignored` runs them,
//! and then they need `VOLCANION_TEST_REDIS_URL` (CI sets both), failing without it.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, SchemaScope, TestApp, TestAppBuilder, assert_problem, event, id_of, wait_until,
};
use crate::own_redis::{OwnRedis, free_port};

/// The Redis these tests share; they only run when asked for, so a missing one fails.
fn redis_url() -> String {
    match std::env::var("VOLCANION_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "the Redis tests need VOLCANION_TEST_REDIS_URL=redis://host:port \
             (scripts/redis.sh start gives redis://127.0.0.1:6379)"
        ),
    }
}

fn unique_prefix() -> String {
    format!("vt-test-{}:", uuid::Uuid::new_v4().simple())
}

async fn pair(url: &str) -> (TestApp, TestApp) {
    TestAppBuilder::new(Backend::Embedded)
        .with_redis(url, &unique_prefix())
        .spawn_pair()
        .await
}

fn now_event(tenant: &crate::helpers::Tenant) -> Value {
    let mut body = event(tenant, "e", "u", "2026-11-20T10:00:00Z");
    body.as_object_mut().unwrap().remove("timestamp");
    body
}

#[tokio::test]
#[ignore = "needs Redis: VOLCANION_TEST_REDIS_URL and --include-ignored"]
async fn the_rate_limit_holds_across_instances() {
    let url = redis_url();
    let (first, second) = pair(&url).await;
    let tenant = first.tenant("acme").await;
    let patched = first
        .patch_partner(&tenant.partner_id, &json!({"rateLimitPerMinute": 10}))
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        for app in [&first, &second] {
            statuses.push(
                app.send_event(&tenant.key, &now_event(&tenant))
                    .await
                    .status(),
            );
        }
    }
    let accepted = statuses
        .iter()
        .filter(|status| **status == StatusCode::ACCEPTED)
        .count();
    let limited = statuses
        .iter()
        .filter(|status| **status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        (accepted, limited),
        (10, 2),
        "one budget of 10, not 2 x 10: {statuses:?}"
    );
}

#[tokio::test]
#[ignore = "needs Redis: VOLCANION_TEST_REDIS_URL and --include-ignored"]
async fn revocation_on_one_instance_reaches_the_other_within_a_second() {
    let url = redis_url();
    let (first, second) = pair(&url).await;
    let tenant = first.tenant("acme").await;
    let created = first
        .create_key(&tenant.partner_id, json!({"scopes": ["ingest"]}))
        .await;
    let key = created["key"].as_str().unwrap();
    assert_eq!(
        second.send_event(key, &now_event(&tenant)).await.status(),
        StatusCode::ACCEPTED,
        "now cached on the second"
    );
    let revoked = first.revoke_key(&id_of(&created)).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let started = Instant::now();
    loop {
        let status = second.send_event(key, &now_event(&tenant)).await.status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::ACCEPTED);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "revocation not seen within a second"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "revocation reached the other instance after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
#[ignore = "needs Redis: VOLCANION_TEST_REDIS_URL and --include-ignored"]
async fn a_schema_change_on_one_instance_reaches_the_other() {
    let url = redis_url();
    let (first, second) = pair(&url).await;
    let tenant = first.tenant("acme").await;
    assert_eq!(
        second
            .send_event(&tenant.key, &now_event(&tenant))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let schema = json!({"mode": "reject", "schema": {"type": "object", "required": ["must"]}});
    let saved = first.put_schema(SchemaScope::Global, "e", &schema).await;
    assert_eq!(saved.status(), StatusCode::CREATED);
    let started = Instant::now();
    while second
        .send_event(&tenant.key, &now_event(&tenant))
        .await
        .status()
        != StatusCode::UNPROCESSABLE_ENTITY
    {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "schema change not seen within a second"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
#[ignore = "needs Redis: VOLCANION_TEST_REDIS_URL and --include-ignored"]
async fn a_nonce_used_on_one_instance_is_refused_by_the_other() {
    let url = redis_url();
    let (first, second) = pair(&url).await;
    let tenant = first.tenant("acme").await;
    let send = |app: &TestApp, timestamp: String, nonce: &'static str| {
        app.client
            .post(app.url("/api/v1/events"))
            .header("x-api-key", &tenant.key)
            .header("x-request-timestamp", timestamp)
            .header("x-request-nonce", nonce)
            .json(&now_event(&tenant))
            .send()
    };
    let now = chrono::Utc::now();
    assert_eq!(
        send(&first, now.to_rfc3339(), "nonce-1")
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );
    let replayed = send(&second, now.timestamp().to_string(), "nonce-1")
        .await
        .unwrap();
    assert_problem(replayed, StatusCode::CONFLICT).await;
    let stale = send(
        &second,
        (now - chrono::Duration::minutes(10)).to_rfc3339(),
        "nonce-2",
    )
    .await
    .unwrap();
    assert_problem(stale, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        send(&second, now.to_rfc3339(), "nonce-2")
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
#[ignore = "needs Redis: VOLCANION_TEST_REDIS_URL and --include-ignored"]
async fn ingestion_survives_a_redis_outage_and_recovers() {
    let _ = redis_url(); // gated with the others; it runs a redis-server of its own
    let redis = OwnRedis::start(free_port()).await;
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let app = TestAppBuilder::new(Backend::Embedded)
        .with_redis(&url, &unique_prefix())
        .spawn()
        .await;
    let tenant = app.tenant("acme").await;
    assert_eq!(
        app.send_event(&tenant.key, &now_event(&tenant))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(app.health().await["components"]["redis"]["status"], "up");

    let port = redis.kill().await;
    let fresh_key = app
        .create_key(&tenant.partner_id, json!({"scopes": ["ingest"]}))
        .await;
    for key in [tenant.key.as_str(), fresh_key["key"].as_str().unwrap()] {
        let response = app.send_event(key, &now_event(&tenant)).await;
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "local limits take over, never 401/500"
        );
        assert!(response.headers().contains_key("ratelimit-remaining"));
    }
    let degraded = app.health().await;
    assert_eq!(degraded["status"], "degraded");
    assert_eq!(degraded["components"]["redis"]["status"], "down");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("volcanion_redis_fallbacks_total{operation=\"rate_limit\"}"),
        "{metrics}"
    );

    let _restarted = OwnRedis::start(port).await;
    wait_until(
        "the service reconnects to Redis",
        Duration::from_secs(15),
        || async { app.health().await["status"] == "up" },
    )
    .await;
    assert_eq!(
        app.send_event(&tenant.key, &now_event(&tenant))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    app.await_events(&tenant.key, "", 4).await;
}

#[tokio::test]
#[ignore = "needs Redis: VOLCANION_TEST_REDIS_URL and --include-ignored"]
async fn report_results_are_shared_through_redis_within_their_ttl() {
    let url = redis_url();
    // Only reports reaching into the current hour are shared (settled ones are cached
    // per instance and invalidated by late events); a long TTL keeps the check exact.
    let (first, second) = TestAppBuilder::new(Backend::Embedded)
        .with_redis(&url, &unique_prefix())
        .configure(|config| config.reports.cache_ttl = Duration::from_secs(60))
        .spawn_pair()
        .await;
    let tenant = first.tenant("acme").await;
    let now = chrono::Utc::now();
    let recent = format!(
        "from={}&to={}",
        (now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        (now + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ")
    );
    first.send_event(&tenant.key, &now_event(&tenant)).await;
    first.await_events(&tenant.key, &recent, 1).await;
    let computed = first.summary(&tenant.key, &recent).await;
    assert_eq!(computed["totalEvents"], 1);
    second.send_event(&tenant.key, &now_event(&tenant)).await;
    second.await_events(&tenant.key, &recent, 2).await;
    let shared = second.summary(&tenant.key, &recent).await;
    assert_eq!(
        shared, computed,
        "the second instance reuses the first one's result"
    );
}

//! Issue 23, findings 8 and 9 and the URL-key rule: one partner can't push another's
//! nonces out of the replay guard, nobody's wrong secrets lock a genuine key out (while
//! brute force still meets `429` and no PBKDF2), `X-Forwarded-For` counts only from a
//! trusted proxy, and read keys are refused in the URL.

use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, Tenant, TestApp, TestAppBuilder, assert_problem};

const HASHES: &str = "volcanion_auth_hashes_total";

fn now_event(tenant: &Tenant) -> Value {
    json!({"eventType": "page_view", "userId": "u1", "subsystem": tenant.subsystem_code})
}

/// The key's `vt_<keyId>` part with a secret that is not its own.
fn forged(tenant: &Tenant, attempt: usize) -> String {
    let prefix = &tenant.key[.."vt_".len() + 16];
    format!("{prefix}_wrongsecret{attempt}")
}

fn post_event(app: &TestApp, key: &str, tenant: &Tenant) -> RequestBuilder {
    app.client
        .post(app.url("/api/v1/events"))
        .header("x-api-key", key)
        .json(&now_event(tenant))
}

async fn status_of(request: RequestBuilder) -> StatusCode {
    request
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

fn with_nonce(app: &TestApp, tenant: &Tenant, nonce: &str) -> RequestBuilder {
    post_event(app, &tenant.key, tenant)
        .header("x-request-timestamp", chrono::Utc::now().to_rfc3339())
        .header("x-request-nonce", nonce)
}

/// Finding 8: partner A sends more nonces than the in-process guard keeps (and replays
/// each, as an attacker raising their standing would); partner B's spent nonce is still
/// refused.
async fn a_partner_flooding_nonces_cannot_evict_another_partners_nonce(backend: Backend) {
    let kept = 20;
    let app = TestAppBuilder::new(backend)
        .configure(|config| config.limits.max_nonces_per_partner = kept)
        .spawn()
        .await;
    let victim = app.tenant("victim").await;
    let flooder = app.tenant("flooder").await;
    let spent = status_of(with_nonce(&app, &victim, "victim-nonce")).await;
    assert_eq!(spent, StatusCode::ACCEPTED);

    for attempt in 0..kept * 10 {
        let nonce = format!("flood-{attempt}");
        let first = status_of(with_nonce(&app, &flooder, &nonce)).await;
        assert_eq!(first, StatusCode::ACCEPTED, "flood nonce {attempt}");
        for _ in 0..3 {
            status_of(with_nonce(&app, &flooder, &nonce)).await;
        }
    }

    let replayed = status_of(with_nonce(&app, &victim, "victim-nonce")).await;
    assert_eq!(replayed, StatusCode::CONFLICT);
    let six_minutes_ago = chrono::Utc::now() - chrono::Duration::minutes(6);
    let stale = post_event(&app, &victim.key, &victim)
        .header("x-request-timestamp", six_minutes_ago.to_rfc3339())
        .header("x-request-nonce", "another-nonce");
    assert_eq!(status_of(stale).await, StatusCode::BAD_REQUEST);
}

/// Finding 9: from one address, 1,000 wrong secrets with the key's id; the first
/// `max_failed_attempts_per_minute` are `401`, the rest `429`, none of them costs a
/// PBKDF2 run, and the genuine key, never seen before, is then accepted from that same
/// address.
async fn a_genuine_key_is_accepted_after_a_thousand_wrong_secrets_from_its_address(
    backend: Backend,
) {
    let budget = 20;
    let app = TestAppBuilder::new(backend)
        .configure(|config| config.auth.max_failed_attempts_per_minute = budget)
        .spawn()
        .await;
    let tenant = app.tenant("acme").await;
    for attempt in 0..1_000 {
        let status = status_of(post_event(&app, &forged(&tenant, attempt), &tenant)).await;
        let expected = if attempt < budget as usize {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(status, expected, "wrong secret {attempt}");
    }
    let unknown_key_id = status_of(post_event(&app, "vt_0123456789abcdef_nope", &tenant)).await;
    assert_eq!(unknown_key_id, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(hashes(&app).await, 0, "wrong secrets cost no PBKDF2");

    let genuine = status_of(post_event(&app, &tenant.key, &tenant)).await;
    assert_eq!(genuine, StatusCode::ACCEPTED);
    assert_eq!(hashes(&app).await, 1);
}

/// With 3 failures allowed per client: 3 wrong secrets forwarded for one client, a
/// fourth refused, then a wrong secret forwarded for another client, whose status (`401`
/// for a budget of its own, `429` for a shared one) is returned.
async fn second_forwarded_client_after_first_spent_its_budget(app: &TestApp) -> StatusCode {
    let tenant = app.tenant("acme").await;
    let from = |client: &str, attempt: usize| {
        post_event(app, &forged(&tenant, attempt), &tenant).header("x-forwarded-for", client)
    };
    for attempt in 0..3 {
        let status = status_of(from("203.0.113.1", attempt)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let over = status_of(from("203.0.113.1", 3)).await;
    assert_eq!(over, StatusCode::TOO_MANY_REQUESTS);
    status_of(from("198.51.100.2, 203.0.113.2", 4)).await
}

async fn forwarded_clients_of_a_trusted_proxy_have_budgets_of_their_own(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .configure(|config| {
            config.auth.max_failed_attempts_per_minute = 3;
            config.http.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        })
        .spawn()
        .await;
    let second = second_forwarded_client_after_first_spent_its_budget(&app).await;
    assert_eq!(second, StatusCode::UNAUTHORIZED);
}

async fn x_forwarded_for_from_an_untrusted_peer_shares_the_peers_budget(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .configure(|config| {
            config.auth.max_failed_attempts_per_minute = 3;
            // A proxy elsewhere is trusted; the test's own address (127.0.0.1) is not.
            config.http.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
        })
        .spawn()
        .await;
    let second = second_forwarded_client_after_first_spent_its_budget(&app).await;
    assert_eq!(second, StatusCode::TOO_MANY_REQUESTS);
}

/// A read key in the URL would be written to access logs: refused on every read
/// endpoint (even with the header too), while the ingest endpoints keep taking
/// `?apiKey=` from `sendBeacon`.
async fn read_endpoints_refuse_a_key_in_the_url_and_ingest_keeps_it(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let tenant = app.tenant("acme").await;
    let read_paths = [
        "/api/v1/events",
        "/api/v1/reports/summary",
        "/api/v1/reports/timeseries",
    ];
    for path in read_paths {
        let in_url = app
            .client
            .get(app.url(&format!("{path}?apiKey={}", tenant.key)))
            .send()
            .await
            .unwrap();
        let problem = assert_problem(in_url, StatusCode::UNAUTHORIZED).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("X-API-Key"), "{path}: {detail}");
        assert!(!detail.contains(&tenant.key), "the key is not echoed");
        let also_in_header = app
            .client
            .get(app.url(&format!("{path}?apiKey={}", tenant.key)))
            .header("x-api-key", &tenant.key)
            .send()
            .await
            .unwrap();
        assert_eq!(also_in_header.status(), StatusCode::UNAUTHORIZED, "{path}");
        let in_header = app
            .client
            .get(app.url(path))
            .header("x-api-key", &tenant.key);
        assert_eq!(status_of(in_header).await, StatusCode::OK, "{path}");
    }

    let beacon = app
        .client
        .post(app.url(&format!("/api/v1/events?apiKey={}", tenant.key)))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(now_event(&tenant).to_string());
    assert_eq!(status_of(beacon).await, StatusCode::ACCEPTED);
    let batch = app
        .client
        .post(app.url(&format!("/api/v1/events/batch?apiKey={}", tenant.key)))
        .json(&json!({"events": [now_event(&tenant)]}));
    assert_eq!(status_of(batch).await, StatusCode::ACCEPTED);
}

crate::backend_tests!(
    a_partner_flooding_nonces_cannot_evict_another_partners_nonce,
    a_genuine_key_is_accepted_after_a_thousand_wrong_secrets_from_its_address,
    forwarded_clients_of_a_trusted_proxy_have_budgets_of_their_own,
    x_forwarded_for_from_an_untrusted_peer_shares_the_peers_budget,
    read_endpoints_refuse_a_key_in_the_url_and_ingest_keeps_it,
);

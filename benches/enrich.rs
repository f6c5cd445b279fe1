//! Cost of enriching one event as analytics.js sends a page view (context with page,
//! campaign, user agent, IP; a few properties): with its user agent already in the cache
//! (the common case: traffic repeats a few hundred agents) and with a user agent never
//! seen before (parsed, then cached). Target: ≤ 2 µs per event with a warm cache.
//! With VOLCANION_BENCH_GEOIP_DB=path.mmdb (`scripts/geoip.sh path`) the country lookup
//! is included. Run: `cargo bench --bench enrich`.

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;
use volcanion::config::Config;
use volcanion::enrich::{EnrichInput, Enricher};
use volcanion::model::JsonObject;
use volcanion::telemetry::Metrics;

/// An analytics.js page call's context, with `version` in the browser's version so that
/// each value makes a distinct user agent.
fn page_view_context(version: u64) -> JsonObject {
    let context = json!({
        "library": {"name": "analytics.js", "version": "next-1.70.0"},
        "page": {
            "path": "/pricing",
            "referrer": "https://www.google.com/",
            "search": "?utm_source=google&utm_medium=cpc&utm_campaign=spring",
            "title": "Pricing - Example",
            "url": "https://www.example.com/pricing?utm_source=google&utm_medium=cpc&utm_campaign=spring"
        },
        "campaign": {"source": "google", "medium": "cpc", "name": "spring"},
        "userAgent": format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.{version}.0 Safari/537.36"),
        "locale": "en-US",
        "ip": "8.8.8.8",
        "timezone": "Europe/Paris"
    });
    JsonObject::from_map(context.as_object().unwrap())
}

fn enrich(criterion: &mut Criterion) {
    let mut config = Config::defaults().enrich;
    config.geoip_db = std::env::var("VOLCANION_BENCH_GEOIP_DB")
        .ok()
        .map(Into::into);
    let with_country = config.geoip_db.is_some();
    let enricher = Enricher::new(&config, Arc::new(Metrics::new())).expect("enricher");
    let properties = JsonObject::from_map(
        json!({"name": "Pricing", "path": "/pricing", "title": "Pricing - Example"})
            .as_object()
            .unwrap(),
    );
    let own_hosts = vec!["example.com".to_string()];
    let client_address: IpAddr = "203.0.113.7".parse().unwrap();
    let input = |context| EnrichInput {
        context,
        properties: &properties,
        request_user_agent: None,
        client_address: Some(client_address),
        own_hosts: &own_hosts,
    };
    let suffix = if with_country { "_with_country" } else { "" };

    let cached_context = page_view_context(0);
    black_box(enricher.enrich(&input(&cached_context)));
    criterion.bench_function(&format!("enrich_page_view_cached_agent{suffix}"), |bench| {
        bench.iter(|| black_box(enricher.enrich(&input(&cached_context))))
    });

    let mut version = 1_u64;
    criterion.bench_function(&format!("enrich_page_view_new_agent{suffix}"), |bench| {
        bench.iter_batched(
            || {
                version += 1;
                page_view_context(version)
            },
            |context| black_box(enricher.enrich(&input(&context))),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, enrich);
criterion_main!(benches);

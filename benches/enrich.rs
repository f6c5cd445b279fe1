//! Cost of enriching one event as analytics.js sends a page view (context with page,
//! campaign, user agent, IP; a few properties): with its user agent already in the cache
//! (the common case: traffic repeats a few hundred agents) and with a user agent never
//! seen before (parsed, then cached). Target: ≤ 2 µs per event with a warm cache.
//! With VOLCANION_BENCH_GEOIP_DB=path.mmdb (`scripts/geoip.sh path`) the country lookup
//! is included. Each is measured twice: in wall time, and in the CPU time of the
//! benchmark's thread (`_cpu`), which a shared machine's other load doesn't inflate.
//! Run: `cargo bench --bench enrich`.

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;
use volcanion::config::Config;
use volcanion::enrich::{EnrichInput, Enricher};
use volcanion::model::JsonObject;
use volcanion::telemetry::Metrics;

// The allocator the service runs with (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`).
struct ThreadCpuTime;

fn thread_cpu_now() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, left: &Duration, right: &Duration) -> Duration {
        *left + *right
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        static WALL_TIME: WallTime = WallTime;
        WALL_TIME.formatter()
    }
}

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

/// What the ingest path would pass for that page view (the client address is only used
/// when `context.ip` is absent, as it isn't here).
fn page_view_input<'a>(
    context: &'a JsonObject,
    properties: &'a JsonObject,
    own_hosts: &'a [String],
) -> EnrichInput<'a> {
    EnrichInput {
        context,
        properties,
        request_user_agent: None,
        client_address: Some(IpAddr::from([203, 0, 113, 7])),
        own_hosts,
    }
}

fn enrich_wall_time(criterion: &mut Criterion) {
    enrich(criterion, "");
}

fn enrich_cpu_time(criterion: &mut Criterion<ThreadCpuTime>) {
    enrich(criterion, "_cpu");
}

fn enrich<M: Measurement + 'static>(criterion: &mut Criterion<M>, measured: &str) {
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
    let input = |context| page_view_input(context, &properties, &own_hosts);
    let country = if with_country { "_with_country" } else { "" };
    let suffix = format!("{country}{measured}");

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
            |context| {
                black_box(enricher.enrich(&page_view_input(&context, &properties, &own_hosts)))
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(wall_time, enrich_wall_time);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = enrich_cpu_time
}
criterion_main!(wall_time, cpu_time);

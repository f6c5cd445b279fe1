//! Cost of one rate-limit check per request: in process (governor) and shared through
//! Redis (one GCRA script call). The Redis half runs when VOLCANION_BENCH_REDIS_URL is set.
//! Run: `VOLCANION_BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench limiter`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;
use uuid::Uuid;
use volcanion::config::Config;
use volcanion::limits::{Budget, LimitScope, RateLimits};
use volcanion::redis::Redis;
use volcanion::telemetry::Metrics;

const GENEROUS_QUOTA: u32 = u32::MAX / 2;

fn limiter(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let local = RateLimits::new(None);
    // What every ingest request charges: its key's and its partner's budgets.
    let budgets = [
        Budget {
            scope: LimitScope::Key(Uuid::now_v7()),
            per_minute: GENEROUS_QUOTA,
        },
        Budget {
            scope: LimitScope::Partner(Uuid::now_v7()),
            per_minute: GENEROUS_QUOTA,
        },
    ];
    criterion.bench_function("rate_limit_check_local", |bench| {
        bench.iter(|| runtime.block_on(async { black_box(local.check(&budgets, 1).await) }))
    });

    let Ok(url) = std::env::var("VOLCANION_BENCH_REDIS_URL") else {
        eprintln!("set VOLCANION_BENCH_REDIS_URL to measure the Redis-backed limiter");
        return;
    };
    let mut config = Config::defaults().redis;
    config.url = Some(SecretString::from(url.clone()));
    config.key_prefix = format!("vt-bench-{}:", Uuid::new_v4().simple());
    let redis = runtime
        .block_on(Redis::connect(&config, &url, Arc::new(Metrics::new())))
        .expect("redis connects");
    let shared = RateLimits::new(Some(Arc::new(redis)));
    criterion.bench_function("rate_limit_check_redis", |bench| {
        bench.iter(|| runtime.block_on(async { black_box(shared.check(&budgets, 1).await) }))
    });
}

criterion_group!(benches, limiter);
criterion_main!(benches);

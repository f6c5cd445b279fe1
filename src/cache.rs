//! The read-through cache every lookup on the request path uses: moka with single-flight
//! loading (concurrent misses for one key load once), counting hits and misses in
//! `volcanion_cache_{hits,misses}_total` under the cache's name.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use prometheus::IntCounter;

use crate::telemetry::Metrics;

pub struct ReadThrough<K, V> {
    cache: Cache<K, V>,
    /// This cache's counters, resolved once: a labelled lookup per request adds up.
    hits: IntCounter,
    misses: IntCounter,
}

impl<K, V> ReadThrough<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Entries live `ttl` and at most `capacity` are kept.
    pub fn new(
        name: &'static str,
        capacity: u64,
        ttl: Duration,
        metrics: Arc<Metrics>,
    ) -> ReadThrough<K, V> {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .time_to_live(ttl)
            .build();
        ReadThrough::wrap(name, cache, metrics)
    }

    /// Around a cache built with its own expiry policy.
    pub fn wrap(
        name: &'static str,
        cache: Cache<K, V>,
        metrics: Arc<Metrics>,
    ) -> ReadThrough<K, V> {
        ReadThrough {
            cache,
            hits: metrics.cache_hits.with_label_values(&[name]),
            misses: metrics.cache_misses.with_label_values(&[name]),
        }
    }

    /// The cached value, or what `load` returns (cached unless it fails).
    /// `load` is called only on a miss (a hit builds no loading future at all).
    pub async fn get_or_load<E, F>(&self, key: K, load: impl FnOnce() -> F) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<V, E>>,
    {
        // A plain read first: the single-flight entry path costs several times more.
        if let Some(value) = self.cache.get(&key).await {
            self.hits.inc();
            return Ok(value);
        }
        let entry = self.cache.entry(key).or_try_insert_with(load()).await?;
        if entry.is_fresh() {
            self.misses.inc();
        } else {
            self.hits.inc();
        }
        Ok(entry.into_value())
    }

    pub fn forget_all(&self) {
        self.cache.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loads_once_and_counts_the_hit() {
        let metrics = Arc::new(Metrics::new());
        let cache = ReadThrough::new("test", 10, Duration::from_secs(60), Arc::clone(&metrics));
        let first: Result<u32, Arc<()>> = cache.get_or_load(1, || async { Ok(7) }).await;
        let second: Result<u32, Arc<()>> = cache.get_or_load(1, || async { Ok(8) }).await;
        assert_eq!((first.unwrap(), second.unwrap()), (7, 7));
        assert_eq!(metrics.cache_hits.with_label_values(&["test"]).get(), 1);
        assert_eq!(metrics.cache_misses.with_label_values(&["test"]).get(), 1);
        cache.forget_all();
        let reloaded: Result<u32, Arc<()>> = cache.get_or_load(1, || async { Ok(9) }).await;
        assert_eq!(reloaded.unwrap(), 9);
    }

    #[tokio::test]
    async fn failed_loads_are_not_cached() {
        let cache = ReadThrough::new(
            "test",
            10,
            Duration::from_secs(60),
            Arc::new(Metrics::new()),
        );
        let failed: Result<u32, Arc<&str>> = cache.get_or_load(1, || async { Err("down") }).await;
        assert_eq!(*failed.unwrap_err(), "down");
        let loaded: Result<u32, Arc<&str>> = cache.get_or_load(1, || async { Ok(3) }).await;
        assert_eq!(loaded.unwrap(), 3);
    }
}

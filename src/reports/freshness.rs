//! How long a report may be cached, by the age of its range: a range that ended before the
//! current hour is settled and kept long (`settled_ttl`), dropped early only when late
//! events land in that partner's past hours (its generation moves on); a range that
//! reaches into the current hour briefly (`recent_ttl`), so new events show within it, and
//! so does a report computed while a join's recount was pending (`Rendered::held_back`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use moka::Expiry;
use uuid::Uuid;

use serde::Serialize;

use crate::cache::ReadThrough;
use crate::config::ReportsConfig;
use crate::rollups::Hour;
use crate::store::StoreError;
use crate::telemetry::Metrics;

/// A report and its JSON body, rendered once when computed: a cached answer costs no
/// serialization (a 30-day daily series is ~25 KB of JSON).
#[derive(Debug)]
pub struct Rendered<T> {
    pub report: T,
    pub json: bytes::Bytes,
    /// Computed while a join's recount was pending (its `dataAsOf` held back): cached
    /// briefly, whatever its range, so the recount shows once done.
    pub held_back: bool,
}

impl<T: Serialize> Rendered<T> {
    pub(super) fn new(report: T, held_back: bool) -> Result<Rendered<T>, StoreError> {
        let json = serde_json::to_vec(&report).map_err(|error| {
            StoreError::Corrupt(format!("a report does not serialize: {error}"))
        })?;
        Ok(Rendered {
            report,
            json: json.into(),
            held_back,
        })
    }
}
/// At most this many reports of each kind are cached.
const MAX_CACHED_REPORTS: u64 = 10_000;

/// Reports cached by the age of their range (`freshness`).
pub(super) fn report_cache<K, T>(
    config: &ReportsConfig,
    metrics: Arc<Metrics>,
) -> ReadThrough<K, Arc<Rendered<T>>>
where
    K: RangeEnd + std::hash::Hash + Eq + Send + Sync + 'static,
    T: Send + Sync + 'static,
{
    let by_age = ByAge {
        recent_ttl: config.cache_ttl,
        settled_ttl: config.settled_cache_ttl,
    };
    let cache = moka::future::Cache::builder()
        .max_capacity(MAX_CACHED_REPORTS)
        .expire_after(by_age)
        .build();
    ReadThrough::wrap("report", cache, metrics)
}

/// What a cached report's key must tell: where its range ends.
pub trait RangeEnd {
    fn range_end(&self) -> DateTime<Utc>;
}

/// Whether a range ending at `to` is settled now: it ends before the current hour began.
pub fn is_settled(to: DateTime<Utc>) -> bool {
    to <= Hour::of(Utc::now()).start()
}

pub struct ByAge {
    pub recent_ttl: Duration,
    pub settled_ttl: Duration,
}

impl<K: RangeEnd, T> Expiry<K, Arc<Rendered<T>>> for ByAge {
    fn expire_after_create(
        &self,
        key: &K,
        value: &Arc<Rendered<T>>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(if is_settled(key.range_end()) && !value.held_back {
            self.settled_ttl
        } else {
            self.recent_ttl
        })
    }
}

/// Per partner, a number that grows whenever late events made its settled reports stale.
/// Part of every report's cache key, so growing it is an invalidation.
#[derive(Default)]
pub struct Generations {
    /// Bumped for every partner at once.
    everyone: AtomicU64,
    partners: Mutex<HashMap<Uuid, u64>>,
}

impl Generations {
    /// Only ever grows, for any one partner.
    pub fn of(&self, partner: Uuid) -> u64 {
        let own = self
            .partners
            .lock()
            .expect("not poisoned")
            .get(&partner)
            .copied()
            .unwrap_or(0);
        own + self.everyone.load(Ordering::Acquire)
    }

    pub fn bump(&self, partner: Uuid) {
        *self
            .partners
            .lock()
            .expect("not poisoned")
            .entry(partner)
            .or_default() += 1;
    }

    /// After messages may have been missed: every partner's settled reports are stale.
    pub fn bump_all(&self) {
        self.everyone.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_only_grow() {
        let generations = Generations::default();
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(generations.of(first), 0);
        generations.bump(first);
        assert_eq!((generations.of(first), generations.of(second)), (1, 0));
        generations.bump_all();
        assert_eq!((generations.of(first), generations.of(second)), (2, 1));
    }

    #[test]
    fn ranges_before_the_current_hour_are_settled() {
        let now = Utc::now();
        assert!(is_settled(Hour::of(now).start()));
        assert!(!is_settled(now + chrono::Duration::seconds(1)));
    }
}

//! Reports: summary and time series over a partner's (or subsystem's) events. Results
//! are computed by paging through the events table and cached briefly (in memory, and in
//! Redis when configured, so instances share them), so a dashboard refreshing every few
//! seconds costs one computation per cache TTL.

mod aggregate;

use std::future::Future;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fred::prelude::{Expiration, KeysInterface};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use moka::future::Cache;
use uuid::Uuid;

pub use aggregate::{
    Bucket, Interval, Summary, SummaryBuilder, Timeseries, TimeseriesBuilder, bucket_starts,
};

use crate::config::ReportsConfig;
use crate::redis::Redis;
use crate::store::{EventFilter, EventQuery, EventScope, EventStore, StoreError, StoredEvent};
use crate::telemetry::Metrics;

const PAGE_SIZE: usize = 5_000;
const MAX_CACHED_REPORTS: u64 = 10_000;

/// What a report covers: a partner, optionally narrowed to one of its subsystems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReportScope {
    pub partner_id: Uuid,
    pub subsystem_id: Option<Uuid>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl ReportScope {
    fn event_scope(&self) -> EventScope {
        match self.subsystem_id {
            Some(subsystem) => EventScope::Subsystem(subsystem),
            None => EventScope::Partner(self.partner_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TimeseriesKey {
    scope: ReportScope,
    interval: Interval,
    tz: Tz,
    event_type: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the range needs more than {0} buckets; use a wider interval or a shorter range")]
    TooManyBuckets(usize),
    #[error(transparent)]
    Store(#[from] Arc<StoreError>),
}

pub struct ReportService {
    store: Arc<dyn EventStore>,
    redis: Option<Arc<Redis>>,
    shared_ttl_seconds: i64,
    summaries: Cache<ReportScope, Arc<Summary>>,
    series: Cache<TimeseriesKey, Arc<Timeseries>>,
    max_buckets: usize,
    metrics: Arc<Metrics>,
}

impl ReportService {
    pub fn new(
        store: Arc<dyn EventStore>,
        redis: Option<Arc<Redis>>,
        config: &ReportsConfig,
        metrics: Arc<Metrics>,
    ) -> ReportService {
        ReportService {
            store,
            redis,
            shared_ttl_seconds: i64::try_from(config.cache_ttl.as_secs().max(1)).unwrap_or(1),
            summaries: Cache::builder()
                .max_capacity(MAX_CACHED_REPORTS)
                .time_to_live(config.cache_ttl)
                .build(),
            series: Cache::builder()
                .max_capacity(MAX_CACHED_REPORTS)
                .time_to_live(config.cache_ttl)
                .build(),
            max_buckets: config.max_buckets,
            metrics,
        }
    }

    pub async fn summary(&self, scope: ReportScope) -> Result<Arc<Summary>, ReportError> {
        let entry = self
            .summaries
            .entry(scope)
            .or_try_insert_with(self.shared(format!("{scope:?}"), async {
                let mut builder =
                    SummaryBuilder::new(scope.partner_id, scope.subsystem_id, scope.from, scope.to);
                self.for_each_event(scope, EventFilter::default(), |event| builder.add(event))
                    .await?;
                Ok(builder.finish())
            }))
            .await?;
        self.metrics
            .record_cache_lookup("report", !entry.is_fresh());
        Ok(entry.into_value())
    }

    pub async fn timeseries(
        &self,
        scope: ReportScope,
        interval: Interval,
        tz: Tz,
        event_type: Option<String>,
    ) -> Result<Arc<Timeseries>, ReportError> {
        let starts = bucket_starts(scope.from, scope.to, interval, tz, self.max_buckets)
            .ok_or(ReportError::TooManyBuckets(self.max_buckets))?;
        let key = TimeseriesKey {
            scope,
            interval,
            tz,
            event_type: event_type.clone(),
        };
        let shared_key = format!("{key:?}");
        let entry = self
            .series
            .entry(key)
            .or_try_insert_with(self.shared(shared_key, async {
                let mut builder = TimeseriesBuilder::new(interval, tz, starts);
                let filter = EventFilter {
                    event_type,
                    ..EventFilter::default()
                };
                self.for_each_event(scope, filter, |event| builder.add(event))
                    .await?;
                Ok(builder.finish())
            }))
            .await?;
        self.metrics
            .record_cache_lookup("report", !entry.is_fresh());
        Ok(entry.into_value())
    }

    /// A report another instance computed within the TTL, else `compute` (then shared).
    async fn shared<T>(
        &self,
        description: String,
        compute: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<Arc<T>, StoreError>
    where
        T: Serialize + DeserializeOwned,
    {
        let Some(redis) = &self.redis else {
            return compute.await.map(Arc::new);
        };
        let digest: [u8; 32] = Sha256::digest(description.as_bytes()).into();
        let key = redis.key(&format!("report:{}", URL_SAFE_NO_PAD.encode(digest)));
        let cached = redis
            .call("report_get", redis.client().get::<Option<String>, _>(&key))
            .await;
        if let Some(report) = cached
            .flatten()
            .and_then(|json| serde_json::from_str(&json).ok())
        {
            return Ok(Arc::new(report));
        }
        let report = compute.await?;
        if let Ok(json) = serde_json::to_string(&report) {
            let expiry = Some(Expiration::EX(self.shared_ttl_seconds));
            let set = redis
                .client()
                .set::<(), _, _>(&key, json, expiry, None, false);
            redis.call("report_set", set).await;
        }
        Ok(Arc::new(report))
    }

    async fn for_each_event(
        &self,
        scope: ReportScope,
        filter: EventFilter,
        mut visit: impl FnMut(&StoredEvent),
    ) -> Result<(), StoreError> {
        let mut query = EventQuery {
            scope: scope.event_scope(),
            from: scope.from,
            to: scope.to,
            filter,
            limit: PAGE_SIZE,
            cursor: None,
        };
        loop {
            let page = self.store.query_events(&query).await?;
            page.items.iter().for_each(&mut visit);
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(()),
            }
        }
    }
}

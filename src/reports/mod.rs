//! Reports: summary and time series over a partner's (or subsystem's) events. Results
//! are computed by paging through the events table and cached briefly, so a dashboard
//! refreshing every few seconds costs one computation per cache TTL.

mod aggregate;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use moka::future::Cache;
use uuid::Uuid;

pub use aggregate::{
    Bucket, Interval, Summary, SummaryBuilder, Timeseries, TimeseriesBuilder, bucket_starts,
};

use crate::config::ReportsConfig;
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
    summaries: Cache<ReportScope, Arc<Summary>>,
    series: Cache<TimeseriesKey, Arc<Timeseries>>,
    max_buckets: usize,
    metrics: Arc<Metrics>,
}

impl ReportService {
    pub fn new(
        store: Arc<dyn EventStore>,
        config: &ReportsConfig,
        metrics: Arc<Metrics>,
    ) -> ReportService {
        ReportService {
            store,
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
            .or_try_insert_with(async {
                let mut builder =
                    SummaryBuilder::new(scope.partner_id, scope.subsystem_id, scope.from, scope.to);
                self.for_each_event(scope, EventFilter::default(), |event| builder.add(event))
                    .await?;
                Ok::<_, StoreError>(Arc::new(builder.finish()))
            })
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
        let entry = self
            .series
            .entry(key)
            .or_try_insert_with(async {
                let mut builder = TimeseriesBuilder::new(interval, tz, starts);
                let filter = EventFilter {
                    event_type,
                    ..EventFilter::default()
                };
                self.for_each_event(scope, filter, |event| builder.add(event))
                    .await?;
                Ok::<_, StoreError>(Arc::new(builder.finish()))
            })
            .await?;
        self.metrics
            .record_cache_lookup("report", !entry.is_fresh());
        Ok(entry.into_value())
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

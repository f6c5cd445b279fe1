//! Reports: summary and time series over a partner's (or subsystem's) events. Results
//! are computed by paging through the events table and cached briefly (in memory, and in
//! Redis when configured, so instances share them), so a dashboard refreshing every few
//! seconds costs one computation per cache TTL.

mod aggregate;

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use aggregate::{
    Bucket, Interval, Summary, SummaryBuilder, Timeseries, TimeseriesBuilder, bucket_starts,
};

use crate::cache::ReadThrough;
use crate::config::ReportsConfig;
use crate::error::{ErrorKind, FieldError, ServiceError};
use crate::model::Event;
use crate::redis::{Redis, shared_cache};
use crate::store::{EventFilter, EventQuery, EventScope, EventStore, StoreError};
use crate::telemetry::Metrics;

const PAGE_SIZE: usize = 1_000;
const MAX_CACHED_REPORTS: u64 = 10_000;

/// What a report covers: a partner, optionally narrowed to one of its subsystems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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

impl ServiceError for ReportError {
    fn kind(&self) -> ErrorKind {
        match self {
            ReportError::TooManyBuckets(_) => ErrorKind::InvalidRequest,
            ReportError::Store(error) => error.kind(),
        }
    }

    fn client_detail(&self) -> String {
        match self {
            ReportError::TooManyBuckets(_) => format!("interval: {self}"),
            ReportError::Store(error) => error.client_detail(),
        }
    }

    fn field_errors(&self) -> Vec<FieldError> {
        match self {
            ReportError::TooManyBuckets(_) => vec![FieldError::new("interval", self.to_string())],
            ReportError::Store(error) => error.field_errors(),
        }
    }
}

pub struct ReportService {
    store: Arc<dyn EventStore>,
    redis: Option<Arc<Redis>>,
    shared_ttl_seconds: i64,
    summaries: ReadThrough<ReportScope, Arc<Summary>>,
    series: ReadThrough<TimeseriesKey, Arc<Timeseries>>,
    max_buckets: usize,
}

impl ReportService {
    pub fn new(
        store: Arc<dyn EventStore>,
        redis: Option<Arc<Redis>>,
        config: &ReportsConfig,
        metrics: Arc<Metrics>,
    ) -> ReportService {
        let ttl = config.cache_ttl;
        ReportService {
            store,
            redis,
            shared_ttl_seconds: i64::try_from(ttl.as_secs().max(1)).unwrap_or(1),
            summaries: ReadThrough::new("report", MAX_CACHED_REPORTS, ttl, Arc::clone(&metrics)),
            series: ReadThrough::new("report", MAX_CACHED_REPORTS, ttl, metrics),
            max_buckets: config.max_buckets,
        }
    }

    pub async fn summary(&self, scope: ReportScope) -> Result<Arc<Summary>, ReportError> {
        let compute = async {
            let mut builder =
                SummaryBuilder::new(scope.partner_id, scope.subsystem_id, scope.from, scope.to);
            self.for_each_event(scope, EventFilter::default(), |event| builder.add(event))
                .await?;
            Ok(builder.finish())
        };
        let report = self
            .summaries
            .get_or_load(scope, self.shared(("summary", scope), compute))
            .await?;
        Ok(report)
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
        let shared_key = ("timeseries", scope, interval, tz.name(), event_type.clone());
        let key = TimeseriesKey {
            scope,
            interval,
            tz,
            event_type: event_type.clone(),
        };
        let compute = async {
            let mut builder = TimeseriesBuilder::new(interval, tz, starts);
            let filter = EventFilter {
                event_type,
                ..EventFilter::default()
            };
            self.for_each_event(scope, filter, |event| builder.add(event))
                .await?;
            Ok(builder.finish())
        };
        let report = self
            .series
            .get_or_load(key, self.shared(shared_key, compute))
            .await?;
        Ok(report)
    }

    /// A report another instance computed within the TTL (through Redis), else `compute`.
    async fn shared<T>(
        &self,
        key: impl Serialize,
        compute: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<Arc<T>, StoreError>
    where
        T: Serialize + DeserializeOwned,
    {
        let report = match &self.redis {
            Some(redis) => {
                shared_cache::get_or_compute(
                    redis,
                    "report",
                    &key,
                    self.shared_ttl_seconds,
                    compute,
                )
                .await?
            }
            None => compute.await?,
        };
        Ok(Arc::new(report))
    }

    async fn for_each_event(
        &self,
        scope: ReportScope,
        filter: EventFilter,
        mut visit: impl FnMut(&Event),
    ) -> Result<(), StoreError> {
        let mut query = EventQuery {
            scope: scope.event_scope(),
            from: scope.from,
            to: scope.to,
            filter,
            limit: PAGE_SIZE,
            cursor: None,
            with_payload: false,
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

//! Reports: summary and time series over a partner's (or subsystem's) events. Whole UTC
//! hours come from the store's rollups; the hours the range's ends or bucket edges cut
//! (`plan`), and those the store has not folded yet, from raw events. Results carry
//! `dataAsOf` and are cached by age (in memory, and in Redis when configured, so
//! instances share recent ones).
//!
//! The work is bounded: a report reads at most `max_raw_hours` hours raw (rollups hold
//! whole UTC hours only, so an hourly series in a zone whose offset is not whole hours cuts
//! every hour and can only be exact from raw events), and `slots` bounds how many reports
//! an instance computes at once.

mod aggregate;
mod freshness;
mod plan;
mod slots;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use aggregate::{
    Aggregate, Bucket, Interval, Summary, SummaryBuilder, Timeseries, TimeseriesBuilder,
    bucket_starts,
};
pub use freshness::Generations;

use crate::cache::ReadThrough;
use crate::config::ReportsConfig;
use crate::error::{ErrorKind, FieldError, ServiceError};
use crate::model::Event;
use crate::redis::{Redis, shared_cache};
use crate::rollups::{RollupQuery, RollupRead};
use crate::store::{EventFilter, EventQuery, EventScope, Store, StoreError};
use crate::telemetry::Metrics;

const PAGE_SIZE: usize = 1_000;

/// A report and its JSON body, rendered once when computed: a cached answer costs no
/// serialization (a 30-day daily series is ~25 KB of JSON).
#[derive(Debug)]
pub struct Rendered<T> {
    pub report: T,
    pub json: bytes::Bytes,
}

impl<T: Serialize> Rendered<T> {
    fn new(report: T) -> Result<Rendered<T>, StoreError> {
        let json = serde_json::to_vec(&report).map_err(|error| {
            StoreError::Corrupt(format!("a report does not serialize: {error}"))
        })?;
        Ok(Rendered {
            report,
            json: json.into(),
        })
    }
}
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SummaryKey {
    scope: ReportScope,
    generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TimeseriesKey {
    scope: ReportScope,
    interval: Interval,
    tz: Tz,
    event_type: Option<String>,
    generation: u64,
}

impl freshness::RangeEnd for SummaryKey {
    fn range_end(&self) -> DateTime<Utc> {
        self.scope.to
    }
}

impl freshness::RangeEnd for TimeseriesKey {
    fn range_end(&self) -> DateTime<Utc> {
        self.scope.to
    }
}

/// How soon to retry when the hours to read raw wait on the rollup fold.
const UNFOLDED_RETRY_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ReportError {
    #[error("the range needs more than {0} buckets; use a wider interval or a shorter range")]
    TooManyBuckets(usize),
    /// The buckets' edges cut more hours than a report may read raw: this range and
    /// interval in this time zone can never be answered (a 400).
    #[error(
        "these buckets cut {hours} UTC hours, each read from raw events (rollups hold whole \
         UTC hours), more than the {max} allowed; use interval=day or a shorter range"
    )]
    TooManyRawHours { hours: usize, max: usize },
    /// Too many hours are not in rollups yet: the fold will catch up (a 503).
    #[error("{hours} hours of this range are not in rollups yet; retry shortly")]
    Unfolded { hours: usize },
    /// Every compute slot stayed taken (a 503).
    #[error("too many reports are being computed; retry shortly")]
    Busy,
    #[error(transparent)]
    Store(#[from] Arc<StoreError>),
}

impl From<StoreError> for ReportError {
    fn from(error: StoreError) -> ReportError {
        ReportError::Store(Arc::new(error))
    }
}

impl ServiceError for ReportError {
    fn kind(&self) -> ErrorKind {
        match self {
            ReportError::TooManyBuckets(_) | ReportError::TooManyRawHours { .. } => {
                ErrorKind::InvalidRequest
            }
            ReportError::Unfolded { .. } | ReportError::Busy => ErrorKind::Unavailable,
            ReportError::Store(error) => error.kind(),
        }
    }

    fn client_detail(&self) -> String {
        match self {
            ReportError::TooManyBuckets(_) | ReportError::TooManyRawHours { .. } => {
                format!("interval: {self}")
            }
            ReportError::Store(error) => error.client_detail(),
            _ => self.to_string(),
        }
    }

    fn field_errors(&self) -> Vec<FieldError> {
        match self {
            ReportError::TooManyBuckets(_) | ReportError::TooManyRawHours { .. } => {
                vec![FieldError::new("interval", self.to_string())]
            }
            ReportError::Store(error) => error.field_errors(),
            _ => Vec::new(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ReportError::Unfolded { .. } => Some(UNFOLDED_RETRY_AFTER),
            _ => None,
        }
    }
}

/// The instant up to which every acknowledged event is in the store (`dataAsOf`).
pub type DataAsOf = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Reports cached by the age of their range (`freshness`).
fn report_cache<K, V>(config: &ReportsConfig, metrics: Arc<Metrics>) -> ReadThrough<K, V>
where
    K: freshness::RangeEnd + std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let by_age = freshness::ByAge {
        recent_ttl: config.cache_ttl,
        settled_ttl: config.settled_cache_ttl,
    };
    let cache = moka::future::Cache::builder()
        .max_capacity(MAX_CACHED_REPORTS)
        .expire_after(by_age)
        .build();
    ReadThrough::wrap("report", cache, metrics)
}

pub struct ReportService {
    store: Arc<dyn Store>,
    data_as_of: DataAsOf,
    redis: Option<Arc<Redis>>,
    shared_ttl_seconds: i64,
    summaries: ReadThrough<SummaryKey, Arc<Rendered<Summary>>>,
    series: ReadThrough<TimeseriesKey, Arc<Rendered<Timeseries>>>,
    generations: Arc<Generations>,
    max_buckets: usize,
    max_raw_hours: usize,
    slots: slots::ComputeSlots,
}

impl ReportService {
    pub fn new(
        store: Arc<dyn Store>,
        data_as_of: DataAsOf,
        generations: Arc<Generations>,
        redis: Option<Arc<Redis>>,
        config: &ReportsConfig,
        metrics: Arc<Metrics>,
    ) -> ReportService {
        let ttl = config.cache_ttl;
        ReportService {
            store,
            data_as_of,
            redis,
            shared_ttl_seconds: i64::try_from(ttl.as_secs().max(1)).unwrap_or(1),
            summaries: report_cache(config, Arc::clone(&metrics)),
            series: report_cache(config, metrics),
            generations,
            max_buckets: config.max_buckets,
            max_raw_hours: config.max_raw_hours,
            slots: slots::ComputeSlots::new(config.max_concurrent, config.max_wait),
        }
    }

    pub async fn summary(&self, scope: ReportScope) -> Result<Arc<Rendered<Summary>>, ReportError> {
        let compute = async {
            let as_of = (self.data_as_of)();
            let mut builder =
                SummaryBuilder::new(scope.partner_id, scope.subsystem_id, scope.from, scope.to);
            self.gather(scope, EventFilter::default(), &[], &mut builder)
                .await?;
            Ok(builder.finish(as_of))
        };
        let key = SummaryKey {
            scope,
            generation: self.generations.of(scope.partner_id),
        };
        self.summaries
            .get_or_load(key, || self.shared(("summary", scope), scope.to, compute))
            .await
            .map_err(|error| ReportError::clone(&error))
    }

    pub async fn timeseries(
        &self,
        scope: ReportScope,
        interval: Interval,
        tz: Tz,
        event_type: Option<String>,
    ) -> Result<Arc<Rendered<Timeseries>>, ReportError> {
        let starts = bucket_starts(scope.from, scope.to, interval, tz, self.max_buckets)
            .ok_or(ReportError::TooManyBuckets(self.max_buckets))?;
        let shared_key = ("timeseries", scope, interval, tz.name(), event_type.clone());
        let key = TimeseriesKey {
            scope,
            interval,
            tz,
            event_type: event_type.clone(),
            generation: self.generations.of(scope.partner_id),
        };
        let compute = async {
            let as_of = (self.data_as_of)();
            let mut builder = TimeseriesBuilder::new(interval, tz, starts);
            let filter = EventFilter {
                event_type,
                ..EventFilter::default()
            };
            let edges = builder.edges().to_vec();
            self.gather(scope, filter, &edges, &mut builder).await?;
            Ok(builder.finish(as_of))
        };
        self.series
            .get_or_load(key, || self.shared(shared_key, scope.to, compute))
            .await
            .map_err(|error| ReportError::clone(&error))
    }

    /// A report another instance computed within the TTL (through Redis), else `compute`.
    /// Only recent ranges are shared: a settled one is cached long here, and late events
    /// invalidate it through the bus, which Redis entries would not follow.
    async fn shared<T>(
        &self,
        key: impl Serialize,
        range_end: DateTime<Utc>,
        compute: impl Future<Output = Result<T, ReportError>>,
    ) -> Result<Arc<Rendered<T>>, ReportError>
    where
        T: Serialize + DeserializeOwned,
    {
        let report = match &self.redis {
            Some(redis) if !freshness::is_settled(range_end) => {
                shared_cache::get_or_compute(
                    redis,
                    "report",
                    &key,
                    self.shared_ttl_seconds,
                    compute,
                )
                .await?
            }
            _ => compute.await?,
        };
        Ok(Arc::new(Rendered::new(report)?))
    }

    /// Feeds `sink` the scope's whole hours from rollups, and from raw events the hours
    /// the range's ends or `edges` cut and those the rollups don't cover yet, holding a
    /// compute slot while it reads.
    async fn gather(
        &self,
        scope: ReportScope,
        filter: EventFilter,
        edges: &[DateTime<Utc>],
        sink: &mut impl Aggregate,
    ) -> Result<(), ReportError> {
        let plan = plan::plan(scope.from, scope.to, edges);
        let cut_hours = plan.raw_hours(&BTreeSet::new());
        if cut_hours > self.max_raw_hours {
            return Err(ReportError::TooManyRawHours {
                hours: cut_hours,
                max: self.max_raw_hours,
            });
        }
        let _slot = self
            .slots
            .enter()
            .await
            .map_err(|slots::AllSlotsTaken| ReportError::Busy)?;
        let rollups = match plan.rollups {
            Some((from, to)) => {
                let query = RollupQuery {
                    partner_id: scope.partner_id,
                    subsystem_id: scope.subsystem_id,
                    event_type: filter.event_type.clone(),
                    from,
                    to,
                    whole_days: plan.whole_days.clone(),
                };
                self.store.hourly_rollups(&query).await?
            }
            None => RollupRead::default(),
        };
        let raw_hours = plan.raw_hours(&rollups.unsettled);
        if raw_hours > self.max_raw_hours {
            return Err(ReportError::Unfolded {
                hours: rollups.unsettled.len(),
            });
        }
        rollups
            .hours
            .iter()
            .filter(|rollup| {
                !plan.cut.contains(&rollup.hour) && !rollups.unsettled.contains(&rollup.hour)
            })
            .for_each(|rollup| sink.add_rollup(rollup));
        for range in plan.raw_with(&rollups.unsettled) {
            self.for_each_event(scope, range, &filter, |event| sink.add(event))
                .await?;
        }
        Ok(())
    }

    async fn for_each_event(
        &self,
        scope: ReportScope,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        filter: &EventFilter,
        mut visit: impl FnMut(&Event),
    ) -> Result<(), StoreError> {
        let mut query = EventQuery {
            scope: scope.event_scope(),
            from,
            to,
            filter: filter.clone(),
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

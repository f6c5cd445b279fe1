//! Reports: summary, time series and breakdowns over a partner's (or subsystem's) events.
//! Whole UTC hours come from the store's rollups (under a `where=` filter, from its
//! breakdown cells: `filtered_gather`); the hours the range's ends or bucket edges cut
//! (`plan`), and those the store has not folded yet, from raw events. Results carry
//! `dataAsOf` and are cached by age (in memory, and in Redis when configured, so
//! instances share recent ones).
//!
//! The work is bounded: a report reads at most `max_raw_hours` hours raw (rollups hold
//! whole UTC hours only, so an hourly series in a zone whose offset is not whole hours cuts
//! every hour and can only be exact from raw events), and `slots` bounds how many reports
//! an instance computes at once. `gather` reads a report's data, `error` says how a
//! report fails.

mod aggregate;
mod breakdown;
mod breakdown_gather;
mod breakdown_raw;
mod error;
mod filtered_gather;
mod freshness;
mod funnel;
mod gather;
mod moments;
mod person;
mod plan;
mod retention;
mod slots;
mod visits;

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use aggregate::{
    Aggregate, Bucket, Interval, Summary, SummaryBuilder, Timeseries, TimeseriesBuilder,
    bucket_starts,
};
pub use breakdown::{Breakdown, BreakdownAsk, BreakdownItem, MAX_LIMIT};
pub use error::ReportError;
pub use freshness::{Generations, Rendered};
pub use funnel::{
    Funnel, FunnelAsk, FunnelBreakdown, FunnelBreakdownItem, FunnelStep, MAX_BREAKDOWN_VALUES,
    MAX_STEPS, MAX_WINDOW_DAYS, MIN_STEPS, StepBreakdown,
};
pub use person::Person;
pub use retention::{Cohort, MAX_PERIODS, Retention, RetentionAsk, RetentionInterval};

use crate::cache::ReadThrough;
use crate::config::ReportsConfig;
use crate::model::Event;
use crate::redis::{Redis, shared_cache};
use crate::rollups::is_bot;
use crate::store::{EventFilter, EventScope, Store};
use crate::telemetry::Metrics;
use crate::tenants::Directory;

/// What a report covers: a partner, optionally narrowed to one of its subsystems, with or
/// without the events classified as bots (`includeBots`, default without).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ReportScope {
    pub partner_id: Uuid,
    pub subsystem_id: Option<Uuid>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub include_bots: bool,
}

impl ReportScope {
    fn event_scope(&self) -> EventScope {
        match self.subsystem_id {
            Some(subsystem) => EventScope::Subsystem(subsystem),
            None => EventScope::Partner(self.partner_id),
        }
    }

    /// Whether a raw event counts in this report.
    fn counts(&self, event: &Event) -> bool {
        self.include_bots || !is_bot(event)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SummaryKey {
    scope: ReportScope,
    filters: Vec<(String, String)>,
    generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TimeseriesKey {
    scope: ReportScope,
    interval: Interval,
    tz: Tz,
    event_type: Option<String>,
    filters: Vec<(String, String)>,
    generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BreakdownKey {
    scope: ReportScope,
    ask: BreakdownAsk,
    generation: u64,
}

/// A funnel or retention report's key: its scope, what it asks, the partner's generation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PeopleKey<A> {
    scope: ReportScope,
    ask: A,
    generation: u64,
}

impl<A> freshness::RangeEnd for PeopleKey<A> {
    fn range_end(&self) -> DateTime<Utc> {
        self.scope.to
    }
}

impl freshness::RangeEnd for BreakdownKey {
    fn range_end(&self) -> DateTime<Utc> {
        self.scope.to
    }
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

/// The instant up to which every acknowledged event is in the store (`dataAsOf`).
pub type DataAsOf = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub struct ReportService {
    store: Arc<dyn Store>,
    data_as_of: DataAsOf,
    redis: Option<Arc<Redis>>,
    shared_ttl_seconds: i64,
    summaries: ReadThrough<SummaryKey, Arc<Rendered<Summary>>>,
    series: ReadThrough<TimeseriesKey, Arc<Rendered<Timeseries>>>,
    breakdowns: ReadThrough<BreakdownKey, Arc<Rendered<Breakdown>>>,
    funnels: ReadThrough<PeopleKey<FunnelAsk>, Arc<Rendered<Funnel>>>,
    retentions: ReadThrough<PeopleKey<RetentionAsk>, Arc<Rendered<Retention>>>,
    generations: Arc<Generations>,
    /// The partners' declared dimensions and the subsystems' names.
    directory: Arc<Directory>,
    max_buckets: usize,
    max_raw_hours: usize,
    max_raw_events: u64,
    session_gap_ms: i64,
    slots: slots::ComputeSlots,
}

impl ReportService {
    pub fn new(
        store: Arc<dyn Store>,
        directory: Arc<Directory>,
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
            summaries: freshness::report_cache(config, Arc::clone(&metrics)),
            series: freshness::report_cache(config, Arc::clone(&metrics)),
            breakdowns: freshness::report_cache(config, Arc::clone(&metrics)),
            funnels: freshness::report_cache(config, Arc::clone(&metrics)),
            retentions: freshness::report_cache(config, metrics),
            generations,
            directory,
            max_buckets: config.max_buckets,
            max_raw_hours: config.max_raw_hours,
            max_raw_events: config.max_raw_events,
            session_gap_ms: i64::try_from(config.session_gap.as_millis()).unwrap_or(i64::MAX),
            slots: slots::ComputeSlots::new(config.max_concurrent, config.max_wait),
        }
    }

    /// The instant up to which every acknowledged event of `partner` is counted: the
    /// queue's (`data_as_of`), or earlier while the store has a join's recount pending
    /// (events counted under an anonymous id its join has not been folded into yet).
    async fn as_of(&self, partner: Uuid) -> Result<DateTime<Utc>, ReportError> {
        let as_of = (self.data_as_of)();
        Ok(match self.store.recount_pending_since(partner).await? {
            Some(pending) => as_of.min(pending),
            None => as_of,
        })
    }

    /// The summary of `scope`, of the events passing `filters` (`where=`) when given.
    pub async fn summary(
        &self,
        scope: ReportScope,
        filters: Vec<(String, String)>,
    ) -> Result<Arc<Rendered<Summary>>, ReportError> {
        let compute = async {
            let as_of = self.as_of(scope.partner_id).await?;
            let mut builder =
                SummaryBuilder::new(scope.partner_id, scope.subsystem_id, scope.from, scope.to);
            let filter = EventFilter::default();
            if filters.is_empty() {
                self.gather(scope, filter, &[], &mut builder).await?;
            } else {
                self.gather_where(scope, filter, &filters, &[], &mut builder)
                    .await?;
            }
            let visits = self.visit_tally(scope, &filters).await?;
            Ok(builder.finish(as_of, visits))
        };
        let shared_key = ("summary", scope, filters.clone());
        let key = SummaryKey {
            scope,
            filters: filters.clone(),
            generation: self.generations.of(scope.partner_id),
        };
        self.summaries
            .get_or_load(key, || self.shared(shared_key, scope, compute))
            .await
            .map_err(|error| ReportError::clone(&error))
    }

    pub async fn timeseries(
        &self,
        scope: ReportScope,
        interval: Interval,
        tz: Tz,
        event_type: Option<String>,
        filters: Vec<(String, String)>,
    ) -> Result<Arc<Rendered<Timeseries>>, ReportError> {
        let starts = bucket_starts(scope.from, scope.to, interval, tz, self.max_buckets)
            .ok_or(ReportError::TooManyBuckets(self.max_buckets))?;
        let shared_key = (
            "timeseries",
            scope,
            interval,
            tz.name(),
            event_type.clone(),
            filters.clone(),
        );
        let key = TimeseriesKey {
            scope,
            interval,
            tz,
            event_type: event_type.clone(),
            filters: filters.clone(),
            generation: self.generations.of(scope.partner_id),
        };
        let compute = async {
            let as_of = self.as_of(scope.partner_id).await?;
            let mut builder = TimeseriesBuilder::new(interval, tz, starts);
            let filter = EventFilter {
                event_type,
                ..EventFilter::default()
            };
            let edges = builder.edges().to_vec();
            if filters.is_empty() {
                self.gather(scope, filter, &edges, &mut builder).await?;
            } else {
                self.gather_where(scope, filter, &filters, &edges, &mut builder)
                    .await?;
            }
            Ok(builder.finish(as_of))
        };
        self.series
            .get_or_load(key, || self.shared(shared_key, scope, compute))
            .await
            .map_err(|error| ReportError::clone(&error))
    }

    pub async fn breakdown(
        &self,
        scope: ReportScope,
        ask: BreakdownAsk,
    ) -> Result<Arc<Rendered<Breakdown>>, ReportError> {
        let shared_key = ("breakdown", scope, ask.clone());
        let compute = self.compute_breakdown(scope, &ask);
        let key = BreakdownKey {
            scope,
            ask: ask.clone(),
            generation: self.generations.of(scope.partner_id),
        };
        self.breakdowns
            .get_or_load(key, || self.shared(shared_key, scope, compute))
            .await
            .map_err(|error| ReportError::clone(&error))
    }

    pub async fn funnel(
        &self,
        scope: ReportScope,
        ask: FunnelAsk,
    ) -> Result<Arc<Rendered<Funnel>>, ReportError> {
        let compute = self.compute_funnel(scope, &ask);
        self.people_report(&self.funnels, "funnel", scope, ask.clone(), compute)
            .await
    }

    pub async fn retention(
        &self,
        scope: ReportScope,
        ask: RetentionAsk,
    ) -> Result<Arc<Rendered<Retention>>, ReportError> {
        let compute = self.compute_retention(scope, &ask, self.max_buckets);
        self.people_report(&self.retentions, "retention", scope, ask.clone(), compute)
            .await
    }

    /// A funnel or retention grid, cached here by what it asks and shared like the others.
    async fn people_report<A, T>(
        &self,
        cache: &ReadThrough<PeopleKey<A>, Arc<Rendered<T>>>,
        name: &'static str,
        scope: ReportScope,
        ask: A,
        compute: impl Future<Output = Result<T, ReportError>>,
    ) -> Result<Arc<Rendered<T>>, ReportError>
    where
        A: Clone + Serialize + std::hash::Hash + Eq + Send + Sync + 'static,
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let key = PeopleKey {
            scope,
            ask: ask.clone(),
            generation: self.generations.of(scope.partner_id),
        };
        cache
            .get_or_load(key, || self.shared((name, scope, ask), scope, compute))
            .await
            .map_err(|error| ReportError::clone(&error))
    }

    /// A report another instance computed within the TTL (through Redis), else `compute`.
    /// Only recent ranges are shared: a settled one is cached long here, and late events
    /// invalidate it through the bus, which Redis entries would not follow.
    async fn shared<T>(
        &self,
        key: impl Serialize,
        scope: ReportScope,
        compute: impl Future<Output = Result<T, ReportError>>,
    ) -> Result<Arc<Rendered<T>>, ReportError>
    where
        T: Serialize + DeserializeOwned,
    {
        let held_back = self
            .store
            .recount_pending_since(scope.partner_id)
            .await?
            .is_some();
        let report = match &self.redis {
            Some(redis) if !freshness::is_settled(scope.to) => {
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
        Ok(Arc::new(Rendered::new(report, held_back)?))
    }
}

//! Pure aggregation: summary totals and calendar-aligned time buckets, from whole-hour
//! rollups, from the breakdown cells under a `where=` filter, and from raw events (the
//! range's partial hours), which all add up the same way.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::Event;
use crate::people::sessions::VisitTally;
use crate::rollups::{ActorSketch, ActorUnion, Hour, HourRollup};

// The `as` names are the ones the OpenAPI document has always used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SummaryReport)]
pub struct Summary {
    pub partner_id: Uuid,
    pub subsystem_id: Option<Uuid>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub total_events: u64,
    pub valid_events: u64,
    pub invalid_events: u64,
    /// Estimated (HyperLogLog, ≤ 2% error).
    pub unique_users: u64,
    pub event_counts: BTreeMap<String, u64>,
    pub subsystem_counts: BTreeMap<Uuid, u64>,
    /// People's visits (runs of events without a gap over `reports.session_gap`, cut at
    /// UTC midnight and at the range's ends); `null` when the part of the range counted
    /// at report time (all of it under a `where=` filter) would read more than
    /// `reports.max_raw_events` events or postings.
    pub visits: Option<u64>,
    /// The share of visits that were one page view and nothing else (`null` without visits).
    pub bounce_rate: Option<f64>,
    /// The median visit duration, first event to last, in whole seconds (`null` without
    /// visits).
    pub visit_duration_seconds: Option<f64>,
    /// Every event acknowledged before this instant is counted.
    pub data_as_of: DateTime<Utc>,
}

/// One whole hour (or UTC day, by its first hour) of the events passing a `where=` filter,
/// as the breakdown cells under the filter count them (`filtered_gather`).
#[derive(Debug)]
pub struct FilteredHour {
    pub hour: Hour,
    pub events: u64,
    pub invalid_events: u64,
    pub by_type: BTreeMap<String, u64>,
    pub by_subsystem: BTreeMap<Uuid, u64>,
    /// Sketches whose union is the hour's actors.
    pub actors: Vec<ActorSketch>,
}

/// What reports are built from: raw events, whole-hour rollups and filtered whole hours
/// add up the same way.
pub trait Aggregate {
    fn add(&mut self, event: &Event);
    /// Adds a whole hour from its rollup.
    fn add_rollup(&mut self, rollup: &HourRollup);
    /// Adds a whole hour (or day) of the events passing a filter.
    fn add_filtered(&mut self, hour: &FilteredHour);
}

pub struct SummaryBuilder {
    summary: Summary,
    actors: ActorUnion,
}

impl SummaryBuilder {
    pub fn new(
        partner_id: Uuid,
        subsystem_id: Option<Uuid>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> SummaryBuilder {
        SummaryBuilder {
            summary: Summary {
                partner_id,
                subsystem_id,
                from,
                to,
                total_events: 0,
                valid_events: 0,
                invalid_events: 0,
                unique_users: 0,
                event_counts: BTreeMap::new(),
                subsystem_counts: BTreeMap::new(),
                visits: None,
                bounce_rate: None,
                visit_duration_seconds: None,
                data_as_of: DateTime::<Utc>::MIN_UTC,
            },
            actors: ActorUnion::default(),
        }
    }

    fn count(&mut self, event_type: &str, subsystem_id: Uuid, is_valid: bool, count: u64) {
        let summary = &mut self.summary;
        summary.total_events += count;
        if is_valid {
            summary.valid_events += count;
        } else {
            summary.invalid_events += count;
        }
        *summary
            .event_counts
            .entry(event_type.to_string())
            .or_default() += count;
        *summary.subsystem_counts.entry(subsystem_id).or_default() += count;
    }

    pub fn finish(mut self, data_as_of: DateTime<Utc>, visits: Option<VisitTally>) -> Summary {
        self.summary.unique_users = self.actors.count();
        self.summary.data_as_of = data_as_of;
        if let Some(tally) = visits {
            self.summary.visits = Some(tally.visits);
            self.summary.bounce_rate = tally.bounce_rate();
            self.summary.visit_duration_seconds = tally.median_duration_seconds();
        }
        self.summary
    }
}

impl Aggregate for SummaryBuilder {
    fn add(&mut self, event: &Event) {
        self.count(&event.event_type, event.subsystem_id, event.is_valid, 1);
        if let Some(actor) = event.actor() {
            self.actors.add_actor(actor);
        }
    }

    fn add_rollup(&mut self, rollup: &HourRollup) {
        for cell in &rollup.cells {
            self.count(
                &cell.event_type,
                cell.subsystem_id,
                cell.is_valid,
                cell.count,
            );
        }
        if let Some(actors) = &rollup.actors {
            self.actors.add_sketch(actors);
        }
    }

    fn add_filtered(&mut self, hour: &FilteredHour) {
        let summary = &mut self.summary;
        summary.total_events += hour.events;
        summary.invalid_events += hour.invalid_events;
        summary.valid_events += hour.events - hour.invalid_events;
        for (event_type, count) in &hour.by_type {
            *summary.event_counts.entry(event_type.clone()).or_default() += count;
        }
        for (subsystem, count) in &hour.by_subsystem {
            *summary.subsystem_counts.entry(*subsystem).or_default() += count;
        }
        hour.actors
            .iter()
            .for_each(|sketch| self.actors.add_sketch(sketch));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ReportInterval)]
pub enum Interval {
    Hour,
    Day,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ReportBucket)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    /// The same instant in the report's time zone, with its offset
    /// (`2026-11-30T00:00:00+01:00`), so a client needs no time-zone database.
    #[schema(value_type = String, format = DateTime)]
    pub local_start: DateTime<FixedOffset>,
    pub count: u64,
    pub unique_users: u64,
    pub by_type: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TimeseriesReport)]
pub struct Timeseries {
    pub interval: Interval,
    pub tz: String,
    pub buckets: Vec<Bucket>,
    /// Every event acknowledged before this instant is counted.
    pub data_as_of: DateTime<Utc>,
}

/// Bucket starts (in UTC) covering `from..to`, aligned to hours or days of `tz`.
/// `None` when there would be more than `max_buckets`.
pub fn bucket_starts(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval: Interval,
    tz: Tz,
    max_buckets: usize,
) -> Option<Vec<DateTime<Utc>>> {
    let local_from = from.with_timezone(&tz);
    let mut starts = Vec::new();
    let mut start = match interval {
        Interval::Hour => local_from
            .with_minute(0)
            .and_then(|local| local.with_second(0))
            .and_then(|local| local.with_nanosecond(0))
            .map_or(from, |local| local.with_timezone(&Utc)),
        Interval::Day => local_midnight(tz, local_from.date_naive()),
    };
    while start < to {
        if starts.len() >= max_buckets {
            return None;
        }
        starts.push(start);
        start = match interval {
            Interval::Hour => start + Duration::hours(1),
            Interval::Day => {
                let next_day = start.with_timezone(&tz).date_naive().succ_opt()?;
                local_midnight(tz, next_day)
            }
        };
    }
    Some(starts)
}

/// The first instant of `date` in `tz` (the day may start after 00:00 across a DST gap).
pub(super) fn local_midnight(tz: Tz, date: chrono::NaiveDate) -> DateTime<Utc> {
    (0..24)
        .find_map(|hour| {
            tz.from_local_datetime(&date.and_time(NaiveTime::from_hms_opt(hour, 0, 0)?))
                .earliest()
        })
        .map(|local| local.with_timezone(&Utc))
        .unwrap_or_else(|| date.and_time(NaiveTime::MIN).and_utc())
}

pub struct TimeseriesBuilder {
    interval: Interval,
    tz: Tz,
    starts: Vec<DateTime<Utc>>,
    buckets: Vec<(u64, ActorUnion, BTreeMap<String, u64>)>,
}

impl TimeseriesBuilder {
    pub fn new(interval: Interval, tz: Tz, starts: Vec<DateTime<Utc>>) -> TimeseriesBuilder {
        let buckets = starts.iter().map(|_| Default::default()).collect();
        TimeseriesBuilder {
            interval,
            tz,
            starts,
            buckets,
        }
    }

    /// The bucket `instant` falls in.
    fn bucket(
        &mut self,
        instant: DateTime<Utc>,
    ) -> Option<&mut (u64, ActorUnion, BTreeMap<String, u64>)> {
        let after = self.starts.partition_point(|start| *start <= instant);
        let index = after.checked_sub(1)?;
        self.buckets.get_mut(index)
    }

    /// Bucket starts after the first: the edges a plan must not let a rollup hour cross.
    pub fn edges(&self) -> &[DateTime<Utc>] {
        self.starts.get(1..).unwrap_or_default()
    }

    pub fn finish(self, data_as_of: DateTime<Utc>) -> Timeseries {
        let tz = self.tz;
        let buckets = self
            .starts
            .into_iter()
            .zip(self.buckets)
            .map(|(start, (count, actors, by_type))| Bucket {
                start,
                local_start: start.with_timezone(&tz).fixed_offset(),
                count,
                unique_users: actors.count(),
                by_type,
            })
            .collect();
        Timeseries {
            interval: self.interval,
            tz: self.tz.name().to_string(),
            buckets,
            data_as_of,
        }
    }
}

impl Aggregate for TimeseriesBuilder {
    fn add(&mut self, event: &Event) {
        let Some((count, actors, by_type)) = self.bucket(event.timestamp) else {
            return;
        };
        *count += 1;
        *by_type.entry(event.event_type.clone()).or_default() += 1;
        if let Some(actor) = event.actor() {
            actors.add_actor(actor);
        }
    }

    /// A whole hour lies inside one bucket (the plan reads hours an edge cuts raw).
    fn add_rollup(&mut self, rollup: &HourRollup) {
        let Some((count, actors, by_type)) = self.bucket(rollup.hour.start()) else {
            return;
        };
        for cell in &rollup.cells {
            *count += cell.count;
            *by_type.entry(cell.event_type.clone()).or_default() += cell.count;
        }
        if let Some(sketch) = &rollup.actors {
            actors.add_sketch(sketch);
        }
    }

    /// A whole hour or day lies inside one bucket, as a rollup's.
    fn add_filtered(&mut self, hour: &FilteredHour) {
        let Some((count, actors, by_type)) = self.bucket(hour.hour.start()) else {
            return;
        };
        *count += hour.events;
        for (event_type, events) in &hour.by_type {
            *by_type.entry(event_type.clone()).or_default() += events;
        }
        hour.actors
            .iter()
            .for_each(|sketch| actors.add_sketch(sketch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::sample_event;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn event_at(text: &str, event_type: &str, user: &str, valid: bool) -> Event {
        let mut event = sample_event(text);
        event.timestamp = utc(text);
        event.event_type = event_type.into();
        event.user_id = Some(user.into());
        event.is_valid = valid;
        event
    }

    #[test]
    fn summary_counts_types_validity_and_distinct_users() {
        let mut builder = SummaryBuilder::new(
            Uuid::nil(),
            None,
            utc("2026-11-20T00:00:00Z"),
            utc("2026-11-21T00:00:00Z"),
        );
        builder.add(&event_at("2026-11-20T01:00:00Z", "view", "u1", true));
        builder.add(&event_at("2026-11-20T02:00:00Z", "view", "u2", false));
        builder.add(&event_at("2026-11-20T03:00:00Z", "buy", "u1", true));
        let summary = builder.finish(utc("2026-11-21T00:00:00Z"), None);
        assert_eq!(
            (
                summary.total_events,
                summary.valid_events,
                summary.invalid_events
            ),
            (3, 2, 1)
        );
        assert_eq!(summary.unique_users, 2);
        assert_eq!(summary.event_counts["view"], 2);
        assert_eq!(summary.subsystem_counts[&Uuid::nil()], 3);
    }

    #[test]
    fn hour_buckets_start_on_the_hour_and_include_empty_ones() {
        let starts = bucket_starts(
            utc("2026-11-20T10:17:05Z"),
            utc("2026-11-20T13:00:00Z"),
            Interval::Hour,
            Tz::UTC,
            100,
        )
        .unwrap();
        assert_eq!(
            starts,
            [
                utc("2026-11-20T10:00:00Z"),
                utc("2026-11-20T11:00:00Z"),
                utc("2026-11-20T12:00:00Z")
            ]
        );
    }

    #[test]
    fn day_buckets_follow_local_midnight() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let starts = bucket_starts(
            utc("2026-11-20T12:00:00Z"),
            utc("2026-11-22T00:00:00Z"),
            Interval::Day,
            tz,
            100,
        )
        .unwrap();
        assert_eq!(
            starts,
            [
                utc("2026-11-19T23:00:00Z"),
                utc("2026-11-20T23:00:00Z"),
                utc("2026-11-21T23:00:00Z")
            ]
        );
    }

    #[test]
    fn day_buckets_are_23_hours_across_spring_forward() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let starts = bucket_starts(
            utc("2026-03-28T12:00:00Z"),
            utc("2026-03-30T00:00:00Z"),
            Interval::Day,
            tz,
            100,
        )
        .unwrap();
        assert_eq!(starts[2] - starts[1], Duration::hours(23), "{starts:?}");
    }

    #[test]
    fn too_many_buckets_are_refused() {
        assert!(
            bucket_starts(
                utc("2026-01-01T00:00:00Z"),
                utc("2026-02-01T00:00:00Z"),
                Interval::Hour,
                Tz::UTC,
                100
            )
            .is_none()
        );
    }

    #[test]
    fn events_land_in_their_bucket() {
        let starts = bucket_starts(
            utc("2026-11-20T00:00:00Z"),
            utc("2026-11-20T03:00:00Z"),
            Interval::Hour,
            Tz::UTC,
            10,
        )
        .unwrap();
        let mut builder = TimeseriesBuilder::new(Interval::Hour, Tz::UTC, starts);
        builder.add(&event_at("2026-11-20T00:59:59Z", "view", "u1", true));
        builder.add(&event_at("2026-11-20T02:00:00Z", "view", "u1", true));
        builder.add(&event_at("2026-11-20T02:30:00Z", "buy", "u2", true));
        let series = builder.finish(utc("2026-11-21T00:00:00Z"));
        let counts: Vec<u64> = series.buckets.iter().map(|bucket| bucket.count).collect();
        assert_eq!(counts, [1, 0, 2]);
        assert_eq!(series.buckets[2].unique_users, 2);
        assert_eq!(series.buckets[2].by_type["buy"], 1);
    }
}

//! The retention report (API.md, "retention"): cohorts of the people whose first start
//! event ever falls in each day or week of the range (in `tz`; weeks start on Monday),
//! and how many of them did the return event in each following period, up to `periods`
//! of them and only those begun. Counted by `people::retention` over the people's
//! moments (`moments`), read from the first event on record.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Days, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::aggregate::local_midnight;
use super::moments::MomentsAsk;
use super::{ReportError, ReportScope, ReportService, slots};
use crate::people::retention::{Periods, grid};
use crate::people::{Moment, Person};

pub const MAX_PERIODS: usize = 52;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RetentionInterval {
    Day,
    Week,
}

/// What a retention grid asks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RetentionAsk {
    pub start_event: String,
    pub return_event: String,
    pub interval: RetentionInterval,
    pub periods: usize,
    #[serde(serialize_with = "tz_name")]
    pub tz: Tz,
    pub filters: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RetentionReport)]
pub struct Retention {
    pub interval: RetentionInterval,
    pub cohorts: Vec<Cohort>,
    pub data_as_of: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cohort {
    /// The cohort's period's first instant (midnight in `tz`).
    pub start: DateTime<Utc>,
    /// People whose first start event ever falls in this period (and in the range).
    pub users: u64,
    /// `returned[k-1]`: those of them who did the return event in the k-th period after.
    pub returned: Vec<u64>,
}

fn tz_name<S: serde::Serializer>(tz: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(tz.name())
}

impl ReportService {
    pub(super) async fn compute_retention(
        &self,
        scope: ReportScope,
        ask: &RetentionAsk,
        max_cohorts: usize,
    ) -> Result<Retention, ReportError> {
        let as_of = self.as_of(scope.partner_id).await?;
        let now = Utc::now();
        let (layout, cohorts) = periods(scope, ask, max_cohorts)?;
        let _slot = self
            .slots
            .enter()
            .await
            .map_err(|slots::AllSlotsTaken| ReportError::Busy)?;
        let end = layout
            .last()
            .copied()
            .unwrap_or(scope.to)
            .min(now.max(scope.to));
        let periods = Periods {
            starts: layout.iter().map(DateTime::timestamp_millis).collect(),
        };
        let within = (scope.from.timestamp_millis(), scope.to.timestamp_millis());
        // First start events ever: looked for from the partner's first stored event on;
        // only the people whose first falls in the range make cohorts.
        let first_on_record = self
            .store
            .first_event_day(scope.partner_id)
            .await?
            .map_or(scope.from, |first| first.min(scope.from));
        let mut first_starts: HashMap<Person, Moment> = HashMap::new();
        let starts = MomentsAsk {
            types: std::slice::from_ref(&ask.start_event),
            slot_filters: &[],
            filters: &ask.filters,
            range: (first_on_record, scope.to),
            person: None,
        };
        self.moments(scope, starts, &mut |person, _, at, _| {
            let first = first_starts.entry(person).or_insert(at);
            *first = (*first).min(at);
        })
        .await?;
        first_starts.retain(|_, first| within.0 <= *first && *first < within.1);
        // Then the periods the cohorts' people did the return event in.
        let mut returns: HashMap<Person, Vec<usize>> = HashMap::new();
        let returning = MomentsAsk {
            types: std::slice::from_ref(&ask.return_event),
            slot_filters: &[],
            filters: &ask.filters,
            range: (layout.first().copied().unwrap_or(scope.from), end),
            person: None,
        };
        self.moments(scope, returning, &mut |person, _, at, _| {
            if first_starts.contains_key(&person)
                && let Some(period) = periods.index_of(at)
            {
                let seen = returns.entry(person).or_default();
                if !seen.contains(&period) {
                    seen.push(period);
                }
            }
        })
        .await?;
        let rows = grid(
            &periods,
            cohorts,
            ask.periods,
            within,
            now.timestamp_millis(),
            &first_starts,
            &returns,
        );
        let cohorts = rows
            .into_iter()
            .map(|row| Cohort {
                start: DateTime::from_timestamp_millis(periods.starts[row.period])
                    .unwrap_or(scope.from),
                users: row.users,
                returned: row.returned,
            })
            .collect();
        Ok(Retention {
            interval: ask.interval,
            cohorts,
            data_as_of: as_of,
        })
    }
}

/// The periods' starts in `ask.tz`: the cohorts' (those the range touches), then
/// `ask.periods` more, then the end of the last; and how many cohorts.
fn periods(
    scope: ReportScope,
    ask: &RetentionAsk,
    max_cohorts: usize,
) -> Result<(Vec<DateTime<Utc>>, usize), ReportError> {
    let tz = ask.tz;
    let first_day = scope.from.with_timezone(&tz).date_naive();
    let mut day = match ask.interval {
        RetentionInterval::Day => first_day,
        RetentionInterval::Week => first_day
            .checked_sub_days(Days::new(u64::from(
                first_day.weekday().num_days_from_monday(),
            )))
            .unwrap_or(first_day),
    };
    let step = match ask.interval {
        RetentionInterval::Day => Days::new(1),
        RetentionInterval::Week => Days::new(7),
    };
    let mut starts = Vec::new();
    let mut cohorts = 0;
    loop {
        let start = local_midnight(tz, day);
        if start >= scope.to && cohorts == 0 {
            cohorts = starts.len();
        }
        if cohorts > 0 && starts.len() > cohorts + ask.periods {
            return Ok((starts, cohorts));
        }
        if cohorts == 0 && starts.len() >= max_cohorts {
            return Err(ReportError::Invalid {
                field: "from",
                message: format!(
                    "the range holds more than {max_cohorts} cohorts; use a shorter range or interval=week"
                ),
            });
        }
        starts.push(start);
        day = day.checked_add_days(step).ok_or(ReportError::Invalid {
            field: "to",
            message: "out of the calendar's range".into(),
        })?;
    }
}

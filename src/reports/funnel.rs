//! The funnel report (API.md, "funnel"): people who did step 1 in the range, then each
//! next step at or after the previous one and within `window` of their step 1. Counted by
//! `people::funnel` over the people's moments (`moments`).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::moments::MomentsAsk;
use super::{ReportError, ReportScope, ReportService, slots};
use crate::people::funnel::{FunnelShape, run};

pub const MIN_STEPS: usize = 2;
pub const MAX_STEPS: usize = 10;
pub const MAX_WINDOW_DAYS: i64 = 90;

/// What a funnel asks: its steps (event types, each with its own filters, `stepWhere=`:
/// one list per step), its window (as asked, and in milliseconds) and its `where=`
/// filters (on every step).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FunnelAsk {
    pub steps: Vec<String>,
    pub step_filters: Vec<Vec<(String, String)>>,
    pub window: String,
    pub window_ms: i64,
    pub filters: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = FunnelReport)]
pub struct Funnel {
    /// The window as asked (`7d`).
    pub window: String,
    pub steps: Vec<FunnelStep>,
    pub data_as_of: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunnelStep {
    pub event_type: String,
    /// People who reached this step.
    pub users: u64,
    /// Of the people at step 1, in [0, 1] (0 when nobody did step 1).
    pub conversion_from_start: f64,
    /// Of the people at the previous step, in [0, 1] (1 for step 1 with people).
    pub conversion_from_previous: f64,
    /// The median time from the previous step, in seconds; `null` for step 1 and for a
    /// step nobody reached.
    pub median_seconds_from_previous: Option<f64>,
}

impl ReportService {
    pub(super) async fn compute_funnel(
        &self,
        scope: ReportScope,
        ask: &FunnelAsk,
    ) -> Result<Funnel, ReportError> {
        let as_of = self.as_of(scope.partner_id).await?;
        // Steps share a slot when they ask for the same events: the same type and filters.
        let asked: Vec<(String, Vec<(String, String)>)> = (ask.steps.iter().cloned())
            .zip(ask.step_filters.iter().cloned())
            .collect();
        let shape = FunnelShape::of(&asked);
        let (types, slot_filters): (Vec<String>, Vec<Vec<(String, String)>>) =
            shape.slot_types.iter().cloned().unzip();
        let _slot = self
            .slots
            .enter()
            .await
            .map_err(|slots::AllSlotsTaken| ReportError::Busy)?;
        // Later steps may fall after `to`, within the window of a step 1 before it.
        let end = scope.to + Duration::milliseconds(ask.window_ms);
        let mut moments = Vec::new();
        let ask_moments = MomentsAsk {
            types: &types,
            slot_filters: &slot_filters,
            filters: &ask.filters,
            range: (scope.from, end),
            person: None,
        };
        self.moments(scope, ask_moments, &mut |person, slot, at| {
            moments.push((person, slot, at))
        })
        .await?;
        let range = (scope.from.timestamp_millis(), scope.to.timestamp_millis());
        let window_ms = ask.window_ms;
        let counts = tokio::task::spawn_blocking(move || run(&shape, moments, range, window_ms))
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        let started = counts.users[0];
        let steps = ask
            .steps
            .iter()
            .enumerate()
            .map(|(step, event_type)| {
                let users = counts.users[step];
                let previous = if step == 0 {
                    started
                } else {
                    counts.users[step - 1]
                };
                FunnelStep {
                    event_type: event_type.clone(),
                    users,
                    conversion_from_start: share(users, started),
                    conversion_from_previous: share(users, previous),
                    median_seconds_from_previous: counts.median_seconds_from_previous[step],
                }
            })
            .collect();
        Ok(Funnel {
            window: ask.window.clone(),
            steps,
            data_as_of: as_of,
        })
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

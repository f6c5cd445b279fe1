//! The funnel report (API.md, "funnel"): people who did step 1 in the range, then each
//! next step at or after the previous one and within `window` of their step 1. Counted by
//! `people::funnel` over the people's moments (`moments`).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::breakdown::resolve_filters;
use super::moments::MomentsAsk;
use super::{BreakdownAsk, ReportError, ReportScope, ReportService, slots};
use crate::people::funnel::{FunnelCounts, FunnelShape, run};

/// What one slot of moments asks for: an event type and its own filters.
type SlotKey = (String, Vec<(String, String)>);

pub const MIN_STEPS: usize = 2;
pub const MAX_STEPS: usize = 10;
pub const MAX_WINDOW_DAYS: i64 = 90;
/// A breakdown's values, each a funnel of its own (default 10).
pub const MAX_BREAKDOWN_VALUES: usize = 50;

/// What a funnel asks: its steps (event types, each with its own filters, `stepWhere=`:
/// one list per step), its window (as asked, and in milliseconds), its `where=` filters
/// (on every step), and a breakdown of step 1 by a dimension's top values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FunnelAsk {
    pub steps: Vec<String>,
    pub step_filters: Vec<Vec<(String, String)>>,
    pub window: String,
    pub window_ms: i64,
    pub filters: Vec<(String, String)>,
    pub breakdown: Option<StepBreakdown>,
}

/// `breakdown=D&limit=N`: the funnel again for each of the `limit` values of `dimension`
/// with the most step-1 events.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct StepBreakdown {
    pub dimension: String,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = FunnelReport)]
pub struct Funnel {
    /// The window as asked (`7d`).
    pub window: String,
    pub steps: Vec<FunnelStep>,
    /// With `breakdown=`: the funnel of the people whose step 1 had each top value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<FunnelBreakdown>,
    pub data_as_of: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunnelBreakdown {
    pub dimension: String,
    /// By step-1 events, descending (as the breakdown report lists them).
    pub items: Vec<FunnelBreakdownItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunnelBreakdownItem {
    pub value: String,
    pub steps: Vec<FunnelStep>,
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
        // The funnel as asked first, then one per top value: only step 1 differs.
        let mut variants = vec![None];
        if let Some(breakdown) = &ask.breakdown {
            let values = self.top_step_values(scope, ask, breakdown).await?;
            variants.extend(values.into_iter().map(Some));
        }
        let mut keys: Vec<SlotKey> = Vec::new();
        let mut slot_of = |key: SlotKey| match keys.iter().position(|known| *known == key) {
            Some(slot) => slot,
            None => {
                keys.push(key);
                keys.len() - 1
            }
        };
        // Steps share a slot when they ask for the same events: the same type and filters.
        let later: Vec<usize> = (1..ask.steps.len())
            .map(|step| slot_of((ask.steps[step].clone(), ask.step_filters[step].clone())))
            .collect();
        // Each variant's step slots.
        let variant_slots: Vec<Vec<usize>> = variants
            .iter()
            .map(|variant| {
                let mut filters = ask.step_filters[0].clone();
                if let (Some(value), Some(breakdown)) = (variant, &ask.breakdown) {
                    filters.push((breakdown.dimension.clone(), value.clone()));
                }
                let first = slot_of((ask.steps[0].clone(), filters));
                std::iter::once(first)
                    .chain(later.iter().copied())
                    .collect()
            })
            .collect();
        let (types, slot_filters): (Vec<String>, Vec<Vec<(String, String)>>) =
            keys.into_iter().unzip();
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
        self.moments(scope, ask_moments, &mut |person, slot, at, _| {
            moments.push((person, slot, at))
        })
        .await?;
        let range = (scope.from.timestamp_millis(), scope.to.timestamp_millis());
        let (window_ms, slots) = (ask.window_ms, types.len());
        let counts = tokio::task::spawn_blocking(move || {
            variant_slots
                .into_iter()
                .map(|step_slots| {
                    let shape = FunnelShape {
                        slot_types: vec![(); slots],
                        step_slots,
                    };
                    run(&shape, moments.clone(), range, window_ms)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        let mut counted = variants.into_iter().zip(counts);
        let (_, all) = counted.next().expect("the funnel as asked");
        let breakdown = ask.breakdown.as_ref().map(|breakdown| FunnelBreakdown {
            dimension: breakdown.dimension.clone(),
            items: counted
                .map(|(value, counts)| FunnelBreakdownItem {
                    value: value.expect("a value"),
                    steps: steps_of(&ask.steps, &counts),
                })
                .collect(),
        });
        Ok(Funnel {
            window: ask.window.clone(),
            steps: steps_of(&ask.steps, &all),
            breakdown,
            data_as_of: as_of,
        })
    }

    /// The values of `breakdown`'s dimension with the most step-1 events in the range,
    /// from the breakdown report (its cells, or raw events under filters).
    async fn top_step_values(
        &self,
        scope: ReportScope,
        ask: &FunnelAsk,
        breakdown: &StepBreakdown,
    ) -> Result<Vec<String>, ReportError> {
        let declared = self.declared_dimensions(scope.partner_id).await?;
        resolve_filters(&ask.step_filters[0], &declared)
            .map_err(|error| error.naming("stepWhere"))?;
        let top = BreakdownAsk {
            dimension: breakdown.dimension.clone(),
            limit: breakdown.limit,
            event_type: Some(ask.steps[0].clone()),
            filters: ask
                .filters
                .iter()
                .chain(&ask.step_filters[0])
                .cloned()
                .collect(),
        };
        let found = self
            .compute_breakdown(scope, &top)
            .await
            .map_err(|error| match error {
                ReportError::Invalid {
                    field: "dimension", ..
                } => error.naming("breakdown"),
                other => other,
            })?;
        Ok(found.items.into_iter().map(|item| item.value).collect())
    }
}

/// The report's steps from their counts.
fn steps_of(steps: &[String], counts: &FunnelCounts) -> Vec<FunnelStep> {
    let started = counts.users[0];
    steps
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
        .collect()
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

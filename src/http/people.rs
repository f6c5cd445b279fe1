//! `GET /api/v1/reports/funnel` and `/retention`: reports over people (API.md, "funnel",
//! "retention"). Steps repeat (`steps=a&steps=b`), so they are read from the raw query
//! string, like `where=`.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, RawQuery, State};
use axum::response::Response;
use serde::Deserialize;

use crate::http::breakdown::{WhereParam, where_filters};
use crate::http::extract::{Reader, query};
use crate::http::problem::ApiError;
use crate::http::reports::{ReportParams, rendered, report_scope, time_zone};
use crate::http::state::AppState;
use crate::reports::{
    Funnel, FunnelAsk, MAX_BREAKDOWN_VALUES, MAX_PERIODS, MAX_STEPS, MAX_WINDOW_DAYS, MIN_STEPS,
    Retention, RetentionAsk, RetentionInterval, StepBreakdown,
};

/// `steps=`, described here, read from the raw query string.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "describes a parameter read by `steps`")]
pub struct FunnelParams {
    /// 2 to 10 event types in order, comma-separated (`steps=a,b,c`) or repeated
    /// (`steps=a&steps=b`).
    steps: Vec<String>,
    /// How long after step 1 the last step may come: a whole number with `m`, `h` or `d`
    /// (`7d`), at most 90 days.
    #[param(pattern = "^[0-9]+[mhd]$")]
    window: String,
    /// A filter on one step's events, `step:key:value` (step from 1, then as `where=`):
    /// `stepWhere=2:page:/pricing` counts only pricing-page views as step 2. Repeat it
    /// for several (on one step they must all hold). A step with its own filter is read
    /// from raw events, at most `reports.max_raw_events` of its type in the range.
    #[param(rename = "stepWhere")]
    step_where: Option<Vec<String>>,
    /// A dimension (as the breakdown report's) to break step 1 down by: the answer's
    /// `breakdown` then holds the funnel of each of its top values among step-1 events.
    breakdown: Option<String>,
    /// With `breakdown`: how many values, 1 to 50 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 50)]
    limit: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/reports/funnel", tag = "reading",
    params(ReportParams, FunnelParams, WhereParam),
    responses((status = 200, description = "People per step, conversions and median times between steps", body = Funnel)),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn funnel(
    State(state): State<Arc<AppState>>,
    reader: Reader,
    params: Result<Query<ReportParams>, QueryRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    let scope = report_scope(&state, &reader, &params).await?;
    let raw = raw.as_deref();
    let window = single(raw, "window")?.ok_or_else(|| ApiError::field("window", "is required"))?;
    let steps = steps(raw)?;
    let ask = FunnelAsk {
        step_filters: step_filters(raw, steps.len())?,
        steps,
        window_ms: window_ms(&window)?,
        window,
        filters: where_filters(raw)?,
        breakdown: step_breakdown(raw)?,
    };
    let answer = state.reports.funnel(scope, ask).await?;
    Ok(rendered(&answer))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct RetentionParams {
    /// The event that puts a person in a cohort (their first ever).
    start_event: Option<String>,
    /// The event that counts as coming back.
    return_event: Option<String>,
    /// Following periods per cohort, 1 to 52 (default 4).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 52)]
    periods: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/reports/retention", tag = "reading",
    params(ReportParams, RetentionParams, WhereParam),
    responses((status = 200, description = "Cohorts by first start event, and returns per following period", body = Retention)),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn retention(
    State(state): State<Arc<AppState>>,
    reader: Reader,
    params: Result<Query<ReportParams>, QueryRejection>,
    retention: Result<Query<RetentionParams>, QueryRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (params, retention) = (query(params)?, query(retention)?);
    let scope = report_scope(&state, &reader, &params).await?;
    let required = |value: &Option<String>, field: &'static str| {
        value
            .clone()
            .filter(|value| !value.is_empty())
            .ok_or_else(|| ApiError::field(field, "is required"))
    };
    let ask = RetentionAsk {
        start_event: required(&retention.start_event, "startEvent")?,
        return_event: required(&retention.return_event, "returnEvent")?,
        interval: match params.interval.as_deref() {
            None | Some("day") => RetentionInterval::Day,
            Some("week") => RetentionInterval::Week,
            Some(other) => {
                return Err(ApiError::field(
                    "interval",
                    format!("must be 'day' or 'week', got '{other}'"),
                ));
            }
        },
        periods: periods(retention.periods.as_deref())?,
        tz: time_zone(params.tz.as_deref())?,
        filters: where_filters(raw.as_deref())?,
    };
    let answer = state.reports.retention(scope, ask).await?;
    Ok(rendered(&answer))
}

/// Every `steps=` value, each split at commas: 2 to 10 non-empty event types.
fn steps(raw: Option<&str>) -> Result<Vec<String>, ApiError> {
    let steps: Vec<String> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(key, _)| key == "steps")
        .flat_map(|(_, value)| {
            value
                .split(',')
                .map(|step| step.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    if steps.iter().any(String::is_empty) {
        return Err(ApiError::field("steps", "an empty step"));
    }
    if !(MIN_STEPS..=MAX_STEPS).contains(&steps.len()) {
        return Err(ApiError::field(
            "steps",
            format!(
                "{MIN_STEPS} to {MAX_STEPS} event types, got {}",
                steps.len()
            ),
        ));
    }
    Ok(steps)
}

/// Every `stepWhere=N:key:value`, as one filter list per step (`N` from 1).
fn step_filters(raw: Option<&str>, steps: usize) -> Result<Vec<Vec<(String, String)>>, ApiError> {
    let mut filters = vec![Vec::new(); steps];
    for (_, text) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(key, _)| key == "stepWhere")
    {
        let invalid = || {
            ApiError::field(
                "stepWhere",
                format!(
                    "must be step:key:value with a step from 1 to {steps}, such as \
                     2:page:/pricing, got '{text}'"
                ),
            )
        };
        let (step, filter) = text.split_once(':').ok_or_else(invalid)?;
        let (key, value) = filter.split_once(':').ok_or_else(invalid)?;
        let step: usize = step.parse().map_err(|_| invalid())?;
        if !(1..=steps).contains(&step) || key.is_empty() {
            return Err(invalid());
        }
        filters[step - 1].push((key.to_string(), value.to_string()));
    }
    Ok(filters)
}

/// `breakdown=D&limit=N`: step 1 broken down by the top values of a dimension.
fn step_breakdown(raw: Option<&str>) -> Result<Option<StepBreakdown>, ApiError> {
    let limit = match single(raw, "limit")? {
        None => 10,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_BREAKDOWN_VALUES).contains(limit))
            .ok_or_else(|| {
                ApiError::field(
                    "limit",
                    format!(
                        "must be a whole number from 1 to {MAX_BREAKDOWN_VALUES}, got '{text}'"
                    ),
                )
            })?,
    };
    Ok(single(raw, "breakdown")?.map(|dimension| StepBreakdown { dimension, limit }))
}

/// The one value of `name`; a repeat is a 400.
fn single(raw: Option<&str>, name: &'static str) -> Result<Option<String>, ApiError> {
    let mut values = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned());
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::field(name, "given more than once"));
    }
    Ok(first)
}

/// `window`: a whole number of minutes, hours or days, from 1 minute to 90 days.
fn window_ms(text: &str) -> Result<i64, ApiError> {
    let invalid = || {
        ApiError::field(
            "window",
            format!(
                "must be a whole number with m, h or d (such as 7d), at most {MAX_WINDOW_DAYS}d, got '{text}'"
            ),
        )
    };
    let unit_ms = match text.chars().last() {
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        Some('d') => 86_400_000,
        _ => return Err(invalid()),
    };
    let count: i64 = text[..text.len() - 1].parse().map_err(|_| invalid())?;
    let window = count.checked_mul(unit_ms).ok_or_else(invalid)?;
    if count <= 0 || window > MAX_WINDOW_DAYS * 86_400_000 {
        return Err(invalid());
    }
    Ok(window)
}

fn periods(text: Option<&str>) -> Result<usize, ApiError> {
    let Some(text) = text else {
        return Ok(4);
    };
    text.parse::<usize>()
        .ok()
        .filter(|periods| (1..=MAX_PERIODS).contains(periods))
        .ok_or_else(|| {
            ApiError::field(
                "periods",
                format!("must be a whole number from 1 to {MAX_PERIODS}, got '{text}'"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_split_at_commas_and_repeat() {
        assert_eq!(steps(Some("steps=a,b&steps=c")).unwrap(), ["a", "b", "c"]);
        assert_eq!(
            steps(Some("steps=Order%20Completed,b")).unwrap(),
            ["Order Completed", "b"]
        );
        for bad in ["steps=a", "steps=a,,b", "", "steps=1,2,3,4,5,6,7,8,9,10,11"] {
            assert!(steps(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn step_filters_name_their_step_and_split_like_where() {
        let filters = step_filters(Some("stepWhere=2%3Apage%3A%2Fa%3Ab&stepWhere=2:os:iOS"), 3);
        assert_eq!(
            filters.unwrap(),
            [
                vec![],
                vec![
                    ("page".to_string(), "/a:b".to_string()),
                    ("os".to_string(), "iOS".to_string())
                ],
                vec![]
            ]
        );
        for bad in [
            "stepWhere=0:os:iOS",
            "stepWhere=4:os:iOS",
            "stepWhere=1:os",
            "stepWhere=x:os:a",
            "stepWhere=1::a",
        ] {
            assert!(step_filters(Some(bad), 3).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_are_whole_minutes_hours_or_days_up_to_90_days() {
        assert_eq!(window_ms("7d").unwrap(), 7 * 86_400_000);
        assert_eq!(window_ms("30m").unwrap(), 1_800_000);
        assert_eq!(window_ms("90d").unwrap(), 90 * 86_400_000);
        for bad in [
            "0d",
            "91d",
            "7",
            "d",
            "-1h",
            "1.5h",
            "7w",
            "99999999999999999d",
        ] {
            assert!(window_ms(bad).is_err(), "{bad}");
        }
    }
}

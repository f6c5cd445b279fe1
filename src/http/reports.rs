//! `GET /api/v1/reports/summary` and `/timeseries`.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::auth::read_target;
use crate::http::breakdown::{WhereParam, where_filters};
use crate::http::extract::{Reader, query};
use crate::http::problem::ApiError;
use crate::http::read_scope::time_range;
use crate::http::state::AppState;
use crate::reports::{Interval, Rendered, ReportScope, Summary, Timeseries};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// Required with the admin token; a `read` key reads its own partner.
    #[param(value_type = Option<uuid::Uuid>)]
    partner_id: Option<String>,
    #[param(value_type = Option<uuid::Uuid>)]
    subsystem_id: Option<String>,
    /// Time series and breakdown: count this event type alone.
    pub(crate) event_type: Option<String>,
    /// RFC 3339; default: 24 hours before `to`.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    from: Option<String>,
    /// RFC 3339; default: now.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    to: Option<String>,
    /// Time series: `hour` (default) or `day`; retention: `day` (default) or `week`.
    #[param(pattern = "^(hour|day|week)$")]
    pub(crate) interval: Option<String>,
    /// Time series and retention: an IANA time zone (default `UTC`).
    pub(crate) tz: Option<String>,
    /// `true` counts the events classified as bots too (default `false`).
    #[param(value_type = Option<bool>)]
    include_bots: Option<String>,
}

pub(crate) async fn report_scope(
    state: &AppState,
    reader: &Reader,
    params: &ReportParams,
) -> Result<ReportScope, ApiError> {
    let target = read_target(
        &state.directory,
        &reader.0,
        params.partner_id.as_deref(),
        params.subsystem_id.as_deref(),
    )
    .await?;
    let (from, to) = time_range(params.from.as_deref(), params.to.as_deref())?;
    let max_range = state.config.reports.max_range;
    if (to - from).to_std().unwrap_or_default() > max_range {
        return Err(ApiError::field(
            "from",
            format!(
                "a report covers at most {}",
                humantime::format_duration(max_range)
            ),
        ));
    }
    Ok(ReportScope {
        partner_id: target.partner_id,
        subsystem_id: target.subsystem_id,
        from,
        to,
        include_bots: include_bots(params.include_bots.as_deref())?,
    })
}

/// `includeBots`: `true` or `false` (default), nothing else.
pub(crate) fn include_bots(text: Option<&str>) -> Result<bool, ApiError> {
    match text {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::field(
            "includeBots",
            format!("must be 'true' or 'false', got '{other}'"),
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/reports/summary", tag = "reading", params(ReportParams, WhereParam),
    responses((status = 200, description = "Counts over the range", body = Summary)),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn summary(
    State(state): State<Arc<AppState>>,
    reader: Reader,
    params: Result<Query<ReportParams>, QueryRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    let scope = report_scope(&state, &reader, &params).await?;
    let filters = where_filters(raw.as_deref())?;
    let summary = state.reports.summary(scope, filters).await?;
    Ok(rendered(&summary))
}

#[utoipa::path(get, path = "/api/v1/reports/timeseries", tag = "reading", params(ReportParams, WhereParam),
    responses((status = 200, description = "Counts per hour or day, empty buckets included", body = Timeseries)),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn timeseries(
    State(state): State<Arc<AppState>>,
    reader: Reader,
    params: Result<Query<ReportParams>, QueryRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    let scope = report_scope(&state, &reader, &params).await?;
    let filters = where_filters(raw.as_deref())?;
    let interval = match params.interval.as_deref() {
        None | Some("hour") => Interval::Hour,
        Some("day") => Interval::Day,
        Some(other) => {
            return Err(ApiError::field(
                "interval",
                format!("must be 'hour' or 'day', got '{other}'"),
            ));
        }
    };
    let tz = time_zone(params.tz.as_deref())?;
    let series = state
        .reports
        .timeseries(scope, interval, tz, params.event_type.clone(), filters)
        .await?;
    Ok(rendered(&series))
}

/// `tz`: an IANA time zone, default UTC.
pub(crate) fn time_zone(name: Option<&str>) -> Result<Tz, ApiError> {
    let name = name.unwrap_or("UTC");
    name.parse().map_err(|_| {
        ApiError::field(
            "tz",
            format!("'{name}' is not an IANA time zone such as Europe/Berlin"),
        )
    })
}

/// A report's JSON body as rendered when it was computed (cached with it).
pub(crate) fn rendered<T>(report: &Rendered<T>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        report.json.clone(),
    )
        .into_response()
}

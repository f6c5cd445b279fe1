//! `GET /api/v1/reports/breakdown`: the top values of one dimension over a range, with
//! `where=` equality filters (repeatable, so read from the raw query string).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, RawQuery, State};
use axum::response::Response;
use serde::Deserialize;

use crate::http::extract::{Reader, query};
use crate::http::problem::ApiError;
use crate::http::reports::{ReportParams, rendered, report_scope};
use crate::http::state::AppState;
use crate::reports::{Breakdown, BreakdownAsk, MAX_LIMIT};

const DEFAULT_LIMIT: usize = 10;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct BreakdownParams {
    /// `eventType`, `subsystem`, `page`, `referrerHost`, `utmSource`, `utmMedium`,
    /// `utmCampaign`, `browser`, `os`, `deviceType`, `country`, `bot`, `valid`,
    /// `properties.<name>` for a property the partner declared as a dimension, or
    /// `entryPage` / `exitPage`: the page visits began or ended on (`events` and
    /// `totalEvents` then count visits, `uniqueUsers` people).
    dimension: Option<String>,
    /// Values listed, 1 to 1000 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// `where=`, repeatable: described here, read from the raw query string.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "describes a parameter read by `where_filters`")]
pub struct WhereParam {
    /// `key:value` (split at the first `:`), exact, on any breakdown dimension; repeat it
    /// for several, which must all hold (e.g. `where=country:DE&where=deviceType:mobile`).
    #[param(rename = "where")]
    filter: Option<Vec<String>>,
}

#[utoipa::path(get, path = "/api/v1/reports/breakdown", tag = "reading",
    params(ReportParams, BreakdownParams, WhereParam),
    responses((status = 200, description = "The top values with their events and unique users", body = Breakdown)),
    security(("bearer" = []), ("apiKey" = [])))]
pub async fn breakdown(
    State(state): State<Arc<AppState>>,
    reader: Reader,
    params: Result<Query<ReportParams>, QueryRejection>,
    breakdown: Result<Query<BreakdownParams>, QueryRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (params, breakdown) = (query(params)?, query(breakdown)?);
    let scope = report_scope(&state, &reader, &params).await?;
    let ask = BreakdownAsk {
        dimension: breakdown
            .dimension
            .clone()
            .ok_or_else(|| ApiError::field("dimension", "is required"))?,
        limit: limit(breakdown.limit.as_deref())?,
        event_type: params.event_type.clone(),
        filters: where_filters(raw.as_deref())?,
    };
    let answer = state.reports.breakdown(scope, ask).await?;
    Ok(rendered(&answer))
}

fn limit(text: Option<&str>) -> Result<usize, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_LIMIT);
    };
    text.parse::<usize>()
        .ok()
        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
        .ok_or_else(|| {
            ApiError::field(
                "limit",
                format!("must be a whole number from 1 to {MAX_LIMIT}, got '{text}'"),
            )
        })
}

/// Every `where=key:value` of the query string, split at the first `:`.
pub(crate) fn where_filters(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(key, _)| key == "where")
        .map(|(_, filter)| {
            filter
                .split_once(':')
                .filter(|(key, _)| !key.is_empty())
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .ok_or_else(|| {
                    ApiError::field(
                        "where",
                        format!("must be key:value, such as country:DE, got '{filter}'"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_split_at_the_first_colon_and_repeat() {
        let filters = where_filters(Some("where=page%3A%2Fa%3Ab&x=1&where=country:DE")).unwrap();
        assert_eq!(
            filters,
            [
                ("page".to_string(), "/a:b".to_string()),
                ("country".to_string(), "DE".to_string())
            ]
        );
        assert!(where_filters(Some("where=country")).is_err());
        assert!(where_filters(Some("where=:DE")).is_err());
        assert!(where_filters(None).unwrap().is_empty());
    }

    #[test]
    fn limits_are_whole_numbers_within_bounds() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some("1000")).unwrap(), 1000);
        for bad in ["0", "1001", "ten", "-1"] {
            assert!(limit(Some(bad)).is_err(), "{bad}");
        }
    }
}

//! The time range every read covers (the partner it targets is `auth::read_target`'s).

use chrono::{DateTime, Duration, Utc};

use crate::http::problem::ApiError;

const DEFAULT_RANGE: Duration = Duration::hours(24);

/// `from..to` (RFC 3339); missing values default to the last 24 hours.
pub fn time_range(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let parse = |name: &str, raw: &str| {
        DateTime::parse_from_rfc3339(raw)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|_| ApiError::field(name, format!("'{raw}' is not an RFC 3339 timestamp")))
    };
    let to = to
        .map(|raw| parse("to", raw))
        .transpose()?
        .unwrap_or_else(Utc::now);
    let from = from
        .map(|raw| parse("from", raw))
        .transpose()?
        .unwrap_or(to - DEFAULT_RANGE);
    if from >= to {
        return Err(ApiError::field("from", "must be earlier than 'to'"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_defaults_to_the_last_day() {
        let (from, to) = time_range(None, None).unwrap();
        assert_eq!(to - from, DEFAULT_RANGE);
    }

    #[test]
    fn range_must_be_ordered_and_well_formed() {
        assert!(time_range(Some("2026-11-21T00:00:00Z"), Some("2026-11-20T00:00:00Z")).is_err());
        let error = time_range(Some("last week"), None).unwrap_err();
        assert_eq!(error.errors[0].field, "from");
    }
}

//! UTC hours, the unit rollups are kept in.

use chrono::{DateTime, TimeZone, Utc};

/// Hours since the Unix epoch (UTC). Events are at or after 2000 and timestamps are clamped
/// near the present, so a `u32` lasts well past the year 400,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour(pub u32);

const SECONDS_PER_HOUR: i64 = 3_600;
pub const HOURS_PER_DAY: u32 = 24;

impl Hour {
    /// The hour `instant` falls in.
    pub fn of(instant: DateTime<Utc>) -> Hour {
        let hours = instant.timestamp().div_euclid(SECONDS_PER_HOUR);
        Hour(u32::try_from(hours.max(0)).unwrap_or(u32::MAX))
    }

    /// The first hour starting at or after `instant`.
    pub fn ceil(instant: DateTime<Utc>) -> Hour {
        let hour = Hour::of(instant);
        if hour.start() == instant {
            hour
        } else {
            hour.next()
        }
    }

    /// The hour's first instant (the latest instant chrono represents, for hours past it).
    pub fn start(self) -> DateTime<Utc> {
        Utc.timestamp_opt(i64::from(self.0) * SECONDS_PER_HOUR, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }

    /// The first hour of this hour's UTC day.
    pub fn day(self) -> Hour {
        Hour(self.0 - self.0 % HOURS_PER_DAY)
    }

    /// Whether this is the first hour of a UTC day.
    pub fn starts_day(self) -> bool {
        self.0.is_multiple_of(HOURS_PER_DAY)
    }

    pub fn next(self) -> Hour {
        Hour(self.0.saturating_add(1))
    }

    pub fn to_be_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn hours_floor_and_ceil_instants() {
        let hour = Hour::of(utc("2026-11-20T10:59:59.999Z"));
        assert_eq!(hour.start(), utc("2026-11-20T10:00:00Z"));
        assert_eq!(hour.end(), utc("2026-11-20T11:00:00Z"));
        assert_eq!(Hour::ceil(utc("2026-11-20T10:00:00Z")), hour);
        assert_eq!(Hour::ceil(utc("2026-11-20T10:00:00.001Z")), hour.next());
    }
}

//! The days a time range covers (one partition per day and bucket), and the millisecond
//! bounds the `event_time` column can be compared with.

use chrono::{DateTime, Days, NaiveDate, Utc};

use super::rows::millisecond_time;

/// The UTC days of `from <= t < to`, newest first.
#[derive(Clone, Copy)]
pub struct DayRange {
    newest: NaiveDate,
    pub count: u32,
}

impl DayRange {
    pub fn of(from: DateTime<Utc>, to: DateTime<Utc>) -> DayRange {
        let last_instant = to - chrono::Duration::nanoseconds(1);
        let newest = last_instant.date_naive();
        let span = (newest - from.date_naive()).num_days().max(0);
        DayRange {
            newest,
            count: u32::try_from(span + 1).unwrap_or(u32::MAX),
        }
    }

    pub fn day(&self, offset: u32) -> NaiveDate {
        self.newest
            .checked_sub_days(Days::new(u64::from(offset)))
            .unwrap_or(NaiveDate::MIN)
    }

    /// How many days `day` lies before the newest day, if it is in the range.
    pub fn offset_of(&self, day: NaiveDate) -> Option<u32> {
        let offset = u32::try_from((self.newest - day).num_days()).ok()?;
        (offset < self.count).then_some(offset)
    }
}

pub fn millisecond_ceiling(time: DateTime<Utc>) -> DateTime<Utc> {
    let floor = millisecond_time(time);
    if floor == time {
        floor
    } else {
        floor + chrono::Duration::milliseconds(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_range_ending_at_midnight_does_not_read_the_next_day() {
        let days = DayRange::of(at("2026-11-20T00:00:00Z"), at("2026-11-21T00:00:00Z"));
        assert_eq!(days.count, 1);
        assert_eq!(days.day(0).to_string(), "2026-11-20");
    }

    #[test]
    fn days_are_listed_newest_first() {
        let days = DayRange::of(at("2026-11-18T23:00:00Z"), at("2026-11-20T01:00:00Z"));
        assert_eq!(days.count, 3);
        assert_eq!(days.day(0).to_string(), "2026-11-20");
        assert_eq!(days.day(2).to_string(), "2026-11-18");
        assert_eq!(days.offset_of(days.day(1)), Some(1));
        assert_eq!(days.offset_of("2026-11-21".parse().unwrap()), None);
        assert_eq!(days.offset_of("2026-11-17".parse().unwrap()), None);
    }

    #[test]
    fn the_upper_bound_rounds_up_to_whole_milliseconds() {
        let exact = at("2026-11-20T00:00:00.001Z");
        assert_eq!(millisecond_ceiling(exact), exact);
        let inside = at("2026-11-20T00:00:00.001500Z");
        assert_eq!(millisecond_ceiling(inside), at("2026-11-20T00:00:00.002Z"));
    }
}

//! The rules `settle`, `rebuild` and `verify` share: when a touch is settled, when a day
//! has ended, and the bounded chunks a repair walks a range in.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::micros;
use crate::rollups::{HOURS_PER_DAY, Hour};

/// Hours one recount covers at most (bounds a repair's memory).
const CHUNK_HOURS: u32 = 24;

/// `now - rollup_settle` in microseconds: a touch at or before it is settled.
#[derive(Debug, Clone, Copy)]
pub(super) struct Horizon(i64);

impl Horizon {
    pub(super) fn new(now: DateTime<Utc>, settle: Duration) -> Horizon {
        Horizon(micros(now) - i64::try_from(settle.as_micros()).unwrap_or(i64::MAX))
    }

    /// No write has touched the hour since `touched_at` for `rollup_settle`.
    pub(super) fn settles(self, touched_at: i64) -> bool {
        touched_at <= self.0
    }

    /// All of `day`'s hours lie before the horizon, so each can be settled.
    pub(super) fn has_ended(self, day: Hour) -> bool {
        micros(day_end(day).start()) <= self.0
    }
}

/// The hour after `day`'s last one.
pub(super) fn day_end(day: Hour) -> Hour {
    Hour(day.0 + HOURS_PER_DAY)
}

/// `from..to` as consecutive chunks of at most `CHUNK_HOURS`.
pub(super) fn chunks(from: Hour, to: Hour) -> impl Iterator<Item = (Hour, Hour)> {
    let mut start = from;
    std::iter::from_fn(move || {
        if start >= to {
            return None;
        }
        let end = Hour(start.0.saturating_add(CHUNK_HOURS).min(to.0));
        let chunk = (start, end);
        start = end;
        Some(chunk)
    })
}

/// The days `from..to` overlaps, by their first hour.
pub(super) fn days(from: Hour, to: Hour) -> impl Iterator<Item = Hour> {
    std::iter::successors(Some(from.day()), |day| Some(day_end(*day)))
        .take_while(move |day| *day < to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touch_settles_once_rollup_settle_has_passed() {
        let now = Hour(48).start();
        let horizon = Horizon::new(now, Duration::from_secs(60));
        let settled_touch = micros(now) - 60_000_000;
        assert!(horizon.settles(settled_touch));
        assert!(!horizon.settles(settled_touch + 1));
    }

    #[test]
    fn a_day_ends_when_its_last_hour_lies_before_the_horizon() {
        let horizon = Horizon::new(Hour(48).start(), Duration::ZERO);
        assert!(horizon.has_ended(Hour(24)));
        assert!(!horizon.has_ended(Hour(48)));
        let settling = Horizon::new(Hour(48).start(), Duration::from_secs(1));
        assert!(!settling.has_ended(Hour(24)));
    }

    #[test]
    fn chunks_cover_a_range_in_at_most_24_hours() {
        let parts: Vec<_> = chunks(Hour(10), Hour(60)).collect();
        assert_eq!(
            parts,
            [
                (Hour(10), Hour(34)),
                (Hour(34), Hour(58)),
                (Hour(58), Hour(60))
            ]
        );
        assert_eq!(chunks(Hour(5), Hour(5)).count(), 0);
    }

    #[test]
    fn days_start_at_the_first_hours_day_and_stop_before_the_end() {
        let starts: Vec<_> = days(Hour(30), Hour(73)).collect();
        assert_eq!(starts, [Hour(24), Hour(48), Hour(72)]);
        assert_eq!(days(Hour(24), Hour(48)).collect::<Vec<_>>(), [Hour(24)]);
    }
}

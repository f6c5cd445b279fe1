//! Which parts of a report's range come from rollups and which from raw events: rollups
//! cover whole UTC hours; an hour that the range's ends or a bucket edge cut (a range
//! starting at 10:17, a day in Asia/Kolkata starting at 18:30 UTC) is read from its raw
//! events instead, so every event is counted once, in the right bucket.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::rollups::{HOURS_PER_DAY, Hour};

#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// Whole hours `from..to` to read from rollups, except those in `cut`.
    pub rollups: Option<(Hour, Hour)>,
    /// Hours within `rollups` that a bucket edge cuts (read raw instead).
    pub cut: BTreeSet<Hour>,
    /// Ranges to read raw events from, each inside one hour.
    pub raw: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// UTC days (by first hour) inside `rollups` that no edge cuts: each lies in one
    /// bucket, so it may be read as one day rollup.
    pub whole_days: BTreeSet<Hour>,
}

/// Splits `from..to`, whose buckets start at `edges`, into rollup hours and raw ranges.
pub fn plan(from: DateTime<Utc>, to: DateTime<Utc>, edges: &[DateTime<Utc>]) -> Plan {
    let cut: BTreeSet<Hour> = edges
        .iter()
        .chain([&from, &to])
        .filter(|edge| from <= **edge && **edge <= to && Hour::of(**edge).start() != **edge)
        .map(|edge| Hour::of(*edge))
        .collect();
    let raw = cut
        .iter()
        .map(|hour| (hour.start().max(from), hour.end().min(to)))
        .filter(|(start, end)| start < end)
        .collect();
    let (first, last) = (Hour::ceil(from), Hour::of(to));
    let whole_days = (first.day().0..last.0)
        .step_by(HOURS_PER_DAY as usize)
        .map(Hour)
        .filter(|day| {
            let (start, end) = (day.start(), Hour(day.0 + HOURS_PER_DAY).start());
            first <= *day
                && Hour(day.0 + HOURS_PER_DAY) <= last
                && !edges
                    .iter()
                    .chain([&from, &to])
                    .any(|edge| start < *edge && *edge < end)
        })
        .collect();
    Plan {
        whole_days,
        rollups: (first < last).then_some((first, last)),
        cut: cut
            .into_iter()
            .filter(|hour| first <= *hour && *hour < last)
            .collect(),
        raw,
    }
}

impl Plan {
    /// How many distinct UTC hours the raw reads touch once the rollups said which of
    /// their hours they don't cover yet: the work a report does beyond its rollups.
    pub fn raw_hours(&self, unsettled: &BTreeSet<Hour>) -> usize {
        let cut_or_partial: BTreeSet<Hour> =
            self.raw.iter().map(|(start, _)| Hour::of(*start)).collect();
        cut_or_partial.union(unsettled).count()
    }

    /// The raw ranges to read once the rollups said which of their hours they don't cover
    /// yet: the cut hours' ranges plus those whole hours, adjacent ones joined.
    pub fn raw_with(&self, unsettled: &BTreeSet<Hour>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut ranges: Vec<_> = unsettled
            .iter()
            .filter(|hour| !self.cut.contains(hour))
            .map(|hour| (hour.start(), hour.end()))
            .chain(self.raw.iter().copied())
            .collect();
        ranges.sort();
        let mut joined: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match joined.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ => joined.push((start, end)),
            }
        }
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn an_aligned_range_is_all_rollups() {
        let plan = plan(
            utc("2026-11-20T00:00:00Z"),
            utc("2026-11-21T00:00:00Z"),
            &[],
        );
        assert_eq!(
            plan.rollups,
            Some((
                Hour::of(utc("2026-11-20T00:00:00Z")),
                Hour::of(utc("2026-11-21T00:00:00Z"))
            ))
        );
        assert!(plan.raw.is_empty() && plan.cut.is_empty());
        assert_eq!(
            plan.whole_days,
            BTreeSet::from([Hour::of(utc("2026-11-20T00:00:00Z"))])
        );
    }

    #[test]
    fn only_days_no_edge_cuts_are_whole() {
        let hourly: Vec<_> = (0..48)
            .map(|h| utc("2026-11-20T00:00:00Z") + chrono::Duration::hours(h))
            .collect();
        let range = (utc("2026-11-19T10:00:00Z"), utc("2026-11-22T00:00:00Z"));
        assert!(plan(range.0, range.1, &hourly).whole_days.is_empty());
        let days = plan(range.0, range.1, &[]).whole_days;
        assert_eq!(
            days,
            BTreeSet::from([
                Hour::of(utc("2026-11-20T00:00:00Z")),
                Hour::of(utc("2026-11-21T00:00:00Z"))
            ]),
            "the 19th is only partly in the range"
        );
    }

    #[test]
    fn partial_hours_at_the_ends_are_read_raw() {
        let plan = plan(
            utc("2026-11-20T10:17:00Z"),
            utc("2026-11-20T13:05:00Z"),
            &[],
        );
        assert_eq!(
            plan.rollups,
            Some((
                Hour::of(utc("2026-11-20T11:00:00Z")),
                Hour::of(utc("2026-11-20T13:00:00Z"))
            ))
        );
        assert_eq!(
            plan.raw,
            [
                (utc("2026-11-20T10:17:00Z"), utc("2026-11-20T11:00:00Z")),
                (utc("2026-11-20T13:00:00Z"), utc("2026-11-20T13:05:00Z"))
            ]
        );
    }

    #[test]
    fn a_half_hour_bucket_edge_makes_its_hour_raw() {
        // Asia/Kolkata midnight is 18:30 UTC.
        let edge = utc("2026-11-20T18:30:00Z");
        let plan = plan(
            utc("2026-11-20T00:00:00Z"),
            utc("2026-11-21T00:00:00Z"),
            &[edge],
        );
        let cut = Hour::of(edge);
        assert_eq!(plan.cut, BTreeSet::from([cut]));
        assert_eq!(plan.raw, [(cut.start(), cut.end())]);
    }

    #[test]
    fn unsettled_hours_join_the_raw_ranges() {
        let plan = plan(
            utc("2026-11-20T10:17:00Z"),
            utc("2026-11-20T14:05:00Z"),
            &[],
        );
        let unsettled = BTreeSet::from([
            Hour::of(utc("2026-11-20T11:00:00Z")),
            Hour::of(utc("2026-11-20T13:00:00Z")),
        ]);
        assert_eq!(
            plan.raw_with(&unsettled),
            [
                (utc("2026-11-20T10:17:00Z"), utc("2026-11-20T12:00:00Z")),
                (utc("2026-11-20T13:00:00Z"), utc("2026-11-20T14:05:00Z"))
            ]
        );
    }

    #[test]
    fn a_range_inside_one_hour_is_read_raw() {
        let plan = plan(
            utc("2026-11-20T10:10:00Z"),
            utc("2026-11-20T10:20:00Z"),
            &[],
        );
        assert_eq!(plan.rollups, None);
        assert_eq!(
            plan.raw,
            [(utc("2026-11-20T10:10:00Z"), utc("2026-11-20T10:20:00Z"))]
        );
    }

    #[test]
    fn an_hourly_series_in_a_half_hour_zone_cuts_every_hour() {
        let from = utc("2026-11-20T00:00:00Z");
        let edges: Vec<_> = (0..24)
            .map(|hour| utc("2026-11-20T00:30:00Z") + chrono::Duration::hours(hour))
            .collect();
        let hourly = plan(from, from + chrono::Duration::hours(24), &edges);
        assert_eq!(hourly.raw_hours(&BTreeSet::new()), 24);
        let whole_hours = plan(from, from + chrono::Duration::hours(24), &[]);
        assert_eq!(whole_hours.raw_hours(&BTreeSet::new()), 0);
        let unsettled = BTreeSet::from([Hour::of(from), Hour::of(utc("2026-11-20T05:00:00Z"))]);
        assert_eq!(whole_hours.raw_hours(&unsettled), 2);
    }
}

//! Sessions (API.md, "Sessions"): a visit is a person's run of events with no gap over
//! the session gap (`reports.session_gap`, 30 minutes by default), cut at UTC midnight
//! (a UTC day's visits are folded with the day, as Universal Analytics cut them). Pure
//! computation over one person's events; `rollups` folds a day's visits, `reports`
//! counts the rest.
//!
//! A visit bounces when it is a single page view and nothing else (a page view followed by
//! any other event, a click or a sign-up, is an engaged visit, as Plausible counts them).
//! Its duration runs from its first event to its last; its entry and exit pages are those
//! of its first and last page views. Events of one type at the same millisecond count
//! once, as people's postings keep them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Moment;

/// The event type a page view is stored as (a Segment `page` call becomes one).
pub const PAGE_VIEW_EVENT_TYPE: &str = "page_view";

/// The session gap the stores fold UTC days' visits with (`reports.session_gap`'s
/// default): a report asked with another counts visits from people's postings instead.
pub const FOLDED_GAP_MS: i64 = 30 * 60_000;

const DAY_MS: i64 = 86_400_000;

/// One event of a person's timeline, as sessions see it: when, which event type (any
/// number that tells types apart), and for a page view, which page (`P`: whatever names a
/// page to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Step<P> {
    pub at: Moment,
    pub event_type: u32,
    pub page_view: Option<P>,
}

/// One visit of one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit<P> {
    pub start: Moment,
    pub end: Moment,
    pub events: u32,
    pub page_views: u32,
    pub entry: Option<P>,
    pub exit: Option<P>,
}

impl<P> Visit<P> {
    pub fn bounced(&self) -> bool {
        self.events == 1 && self.page_views == 1
    }

    pub fn duration_ms(&self) -> i64 {
        self.end - self.start
    }
}

/// The visits of one person whose events are `steps`, in any order (sorted here, events
/// of one type at the same millisecond once).
pub fn visits<P: Clone + Ord>(steps: &mut Vec<Step<P>>, gap_ms: i64) -> Vec<Visit<P>> {
    steps.sort_unstable();
    steps.dedup_by_key(|step| (step.at, step.event_type));
    let mut visits: Vec<Visit<P>> = Vec::new();
    for step in steps.iter() {
        let continues = visits.last().is_some_and(|visit| {
            step.at - visit.end <= gap_ms
                && step.at.div_euclid(DAY_MS) == visit.start.div_euclid(DAY_MS)
        });
        if !continues {
            visits.push(Visit {
                start: step.at,
                end: step.at,
                events: 0,
                page_views: 0,
                entry: None,
                exit: None,
            });
        }
        let visit = visits.last_mut().expect("just pushed");
        visit.end = step.at;
        visit.events += 1;
        if let Some(page) = &step.page_view {
            visit.page_views += 1;
            visit.entry.get_or_insert_with(|| page.clone());
            visit.exit = Some(page.clone());
        }
    }
    visits
}

/// Visits, bounces and visit durations (whole seconds → visits), summed over people and
/// days: tallies merge exactly, their median too, so a UTC day's is stored as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitTally {
    pub visits: u64,
    pub bounces: u64,
    durations: BTreeMap<u32, u64>,
}

impl VisitTally {
    pub fn add<P>(&mut self, visit: &Visit<P>) {
        self.visits += 1;
        self.bounces += u64::from(visit.bounced());
        let seconds = u32::try_from(visit.duration_ms() / 1_000).unwrap_or(u32::MAX);
        *self.durations.entry(seconds).or_default() += 1;
    }

    pub fn merge(&mut self, other: VisitTally) {
        self.visits += other.visits;
        self.bounces += other.bounces;
        for (seconds, visits) in other.durations {
            *self.durations.entry(seconds).or_default() += visits;
        }
    }

    /// The share of visits that bounced, in [0, 1] (`None` without visits).
    pub fn bounce_rate(&self) -> Option<f64> {
        (self.visits > 0).then(|| self.bounces as f64 / self.visits as f64)
    }

    /// The median visit duration in whole seconds: the middle one, or the mean of the
    /// middle two (`None` without visits).
    pub fn median_duration_seconds(&self) -> Option<f64> {
        let count: u64 = self.durations.values().sum();
        if count == 0 {
            return None;
        }
        let nth = |index: u64| {
            let mut seen = 0;
            for (seconds, visits) in &self.durations {
                seen += visits;
                if index < seen {
                    return f64::from(*seconds);
                }
            }
            unreachable!("index below the count")
        };
        Some(if count % 2 == 1 {
            nth(count / 2)
        } else {
            (nth(count / 2 - 1) + nth(count / 2)) / 2.0
        })
    }

    /// The tally as parts of at most about `max_part_bytes` each (at least one duration a
    /// part): each part a tally of its own, so the parts merge back to this one.
    pub fn to_parts(&self, max_part_bytes: usize) -> Vec<Vec<u8>> {
        // A duration and its visits encode in at most 15 bytes (two varints).
        let per_part = (max_part_bytes / 16).max(1);
        let entries: Vec<(u32, u64)> = self.durations.iter().map(|(s, n)| (*s, *n)).collect();
        let mut chunks: Vec<&[(u32, u64)]> = entries.chunks(per_part).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        chunks
            .into_iter()
            .enumerate()
            .map(|(index, chunk)| {
                let part = VisitTally {
                    visits: chunk.iter().map(|(_, visits)| visits).sum(),
                    bounces: if index == 0 { self.bounces } else { 0 },
                    durations: chunk.iter().copied().collect(),
                };
                postcard::to_stdvec(&part).expect("a tally always encodes")
            })
            .collect()
    }

    pub fn from_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Result<VisitTally, String> {
        let mut tally = VisitTally::default();
        for part in parts {
            let part: VisitTally = postcard::from_bytes(part)
                .map_err(|error| format!("a visit tally does not decode: {error}"))?;
            tally.merge(part);
        }
        Ok(tally)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GAP: i64 = 30 * 60_000;

    fn view(at: Moment, page: &'static str) -> Step<&'static str> {
        Step {
            at,
            event_type: 0,
            page_view: Some(page),
        }
    }

    fn other(at: Moment) -> Step<&'static str> {
        Step {
            at,
            event_type: 1,
            page_view: None,
        }
    }

    #[test]
    fn a_gap_over_the_session_gap_starts_a_visit_and_one_of_exactly_it_does_not() {
        let mut steps = vec![
            view(60_000 + GAP + GAP + 1, "/blog"),
            view(0, "/"),
            other(60_000),
            view(60_000 + GAP, "/pricing"),
        ];
        let visits = visits(&mut steps, GAP);
        assert_eq!(visits.len(), 2);
        assert_eq!(
            (visits[0].entry, visits[0].exit, visits[0].events),
            (Some("/"), Some("/pricing"), 3)
        );
        assert_eq!(visits[0].duration_ms(), 60_000 + GAP);
        assert!(!visits[0].bounced());
        assert!(visits[1].bounced(), "one page view and nothing else");
        assert_eq!(visits[1].duration_ms(), 0);
    }

    #[test]
    fn utc_midnight_ends_a_visit_and_a_repeat_at_the_same_millisecond_counts_once() {
        let midnight = 20_000 * DAY_MS;
        let mut steps = vec![
            view(midnight - 60_000, "/late"),
            view(midnight - 60_000, "/late"),
            view(midnight, "/early"),
        ];
        let found = visits(&mut steps, GAP);
        assert_eq!(found.len(), 2, "cut at midnight, a minute apart");
        assert!(found[0].bounced(), "the repeated view is one event");
        assert_eq!(found[1].entry, Some("/early"));
    }

    #[test]
    fn a_page_view_then_another_event_is_engaged_and_events_without_pages_have_no_entry() {
        let engaged = visits(&mut vec![view(0, "/"), other(1_000)], GAP);
        assert!(!engaged[0].bounced());
        let silent = visits(&mut vec![other(0), other(1_000)], GAP);
        assert_eq!((silent[0].entry, silent[0].page_views), (None, 0));
        assert!(!silent[0].bounced());
    }

    #[test]
    fn a_tally_gives_the_bounce_rate_and_the_median_duration_and_merges_from_its_parts() {
        let mut tally = VisitTally::default();
        assert_eq!(
            (tally.bounce_rate(), tally.median_duration_seconds()),
            (None, None)
        );
        let mut steps = vec![
            view(0, "/"),
            view(4 * GAP, "/a"),
            view(4 * GAP + 10_999, "/b"),
        ];
        for visit in visits(&mut steps, GAP) {
            tally.add(&visit);
        }
        assert_eq!((tally.visits, tally.bounces), (2, 1));
        assert_eq!(tally.bounce_rate(), Some(0.5));
        assert_eq!(
            tally.median_duration_seconds(),
            Some(5.0),
            "the mean of 0 s and 10 s (whole seconds)"
        );
        let mut more = VisitTally::default();
        for visit in visits(&mut vec![view(0, "/"), other(30_000)], GAP) {
            more.add(&visit);
        }
        tally.merge(more);
        assert_eq!(tally.median_duration_seconds(), Some(10.0));
        let parts = tally.to_parts(16);
        assert_eq!(parts.len(), 3, "one duration a part");
        let joined = VisitTally::from_parts(parts.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(joined, tally);
        let empty = VisitTally::default().to_parts(16);
        assert_eq!(
            VisitTally::from_parts(empty.iter().map(Vec::as_slice)).unwrap(),
            VisitTally::default()
        );
    }

    proptest! {
        /// Visits partition the events: every event in exactly one visit, in order, each
        /// visit's events within the gap of the one before and on one UTC day, and visits
        /// apart by more or on different days; the median is the sorted durations' middle.
        #[test]
        fn visits_partition_a_timeline_at_its_long_gaps_and_midnights(
            times in prop::collection::vec(0i64..(3 * DAY_MS / 2), 0..60),
            pages in prop::collection::vec(any::<bool>(), 60),
        ) {
            let mut times = times;
            times.sort_unstable();
            times.dedup();
            let steps: Vec<Step<usize>> = times
                .iter()
                .enumerate()
                .map(|(index, &at)| Step { at, event_type: 0, page_view: pages[index].then_some(index) })
                .collect();
            let found = visits(&mut steps.clone(), GAP);
            let total: u32 = found.iter().map(|visit| visit.events).sum();
            prop_assert_eq!(total as usize, steps.len());
            let day = |at: Moment| at.div_euclid(DAY_MS);
            let mut next = 0;
            let mut tally = VisitTally::default();
            for (index, visit) in found.iter().enumerate() {
                tally.add(visit);
                let own = &steps[next..next + visit.events as usize];
                next += visit.events as usize;
                prop_assert_eq!((visit.start, visit.end), (own[0].at, own[own.len() - 1].at));
                prop_assert!(own.windows(2).all(|pair| pair[1].at - pair[0].at <= GAP));
                prop_assert_eq!(day(visit.start), day(visit.end));
                let views: Vec<usize> = own.iter().filter_map(|step| step.page_view).collect();
                prop_assert_eq!(visit.entry, views.first().copied());
                prop_assert_eq!(visit.exit, views.last().copied());
                if index > 0 {
                    let before = &found[index - 1];
                    prop_assert!(visit.start - before.end > GAP || day(visit.start) != day(before.end));
                }
            }
            let mut seconds: Vec<i64> = found.iter().map(|visit| visit.duration_ms() / 1_000 * 1_000).collect();
            prop_assert_eq!(tally.median_duration_seconds(), crate::people::median_seconds(&mut seconds));
        }
    }
}

//! Sessions (API.md, "Sessions"): a visit is a person's run of events with no gap over
//! the session gap (`reports.session_gap`, 30 minutes by default). Pure computation over
//! one person's events in time order; `reports` gathers them.
//!
//! A visit bounces when it is a single page view and nothing else (a page view followed by
//! any other event, a click or a sign-up, is an engaged visit, as Plausible counts them).
//! Its duration runs from its first event to its last; its entry and exit pages are those
//! of its first and last page views.

use super::{Moment, median_seconds};

/// The event type a page view is stored as (a Segment `page` call becomes one).
pub const PAGE_VIEW_EVENT_TYPE: &str = "page_view";

/// One event of a person's timeline, as sessions see it: when, and for a page view, which
/// page (`P`: whatever names a page to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Step<P> {
    pub at: Moment,
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

/// The visits of one person whose events are `steps`, in time order.
pub fn visits<P: Clone>(steps: &[Step<P>], gap_ms: i64) -> Vec<Visit<P>> {
    let mut visits: Vec<Visit<P>> = Vec::new();
    for step in steps {
        let continues = visits
            .last()
            .is_some_and(|visit| step.at - visit.end <= gap_ms);
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

/// Visits, bounces and durations summed over people.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VisitTally {
    pub visits: u64,
    pub bounces: u64,
    durations_ms: Vec<i64>,
}

impl VisitTally {
    pub fn add<P>(&mut self, visit: &Visit<P>) {
        self.visits += 1;
        self.bounces += u64::from(visit.bounced());
        self.durations_ms.push(visit.duration_ms());
    }

    /// The share of visits that bounced, in [0, 1] (0 without visits).
    pub fn bounce_rate(&self) -> f64 {
        if self.visits == 0 {
            0.0
        } else {
            self.bounces as f64 / self.visits as f64
        }
    }

    /// The median visit duration in seconds (`None` without visits).
    pub fn median_duration_seconds(&mut self) -> Option<f64> {
        median_seconds(&mut self.durations_ms)
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
            page_view: Some(page),
        }
    }

    fn other(at: Moment) -> Step<&'static str> {
        Step {
            at,
            page_view: None,
        }
    }

    #[test]
    fn a_gap_over_the_session_gap_starts_a_visit_and_one_of_exactly_it_does_not() {
        let steps = [
            view(0, "/"),
            other(60_000),
            view(60_000 + GAP, "/pricing"),
            view(60_000 + GAP + GAP + 1, "/blog"),
        ];
        let visits = visits(&steps, GAP);
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
    fn a_page_view_then_another_event_is_engaged_and_events_without_pages_have_no_entry() {
        let engaged = visits(&[view(0, "/"), other(1_000)], GAP);
        assert!(!engaged[0].bounced());
        let silent = visits(&[other(0), other(1_000)], GAP);
        assert_eq!((silent[0].entry, silent[0].page_views), (None, 0));
        assert!(!silent[0].bounced());
    }

    #[test]
    fn a_tally_gives_the_bounce_rate_and_the_median_duration() {
        let mut tally = VisitTally::default();
        assert_eq!(
            (tally.bounce_rate(), tally.median_duration_seconds()),
            (0.0, None)
        );
        for visit in visits(
            &[
                view(0, "/"),
                view(4 * GAP, "/a"),
                view(4 * GAP + 10_000, "/b"),
            ],
            GAP,
        ) {
            tally.add(&visit);
        }
        assert_eq!((tally.visits, tally.bounces), (2, 1));
        assert_eq!(tally.bounce_rate(), 0.5);
        assert_eq!(
            tally.median_duration_seconds(),
            Some(5.0),
            "the mean of 0 s and 10 s"
        );
    }

    proptest! {
        /// Visits partition the events: every event in exactly one visit, in order, each
        /// visit's events within the gap of the one before, and visits apart by more.
        #[test]
        fn visits_partition_a_timeline_at_its_long_gaps(
            mut times in prop::collection::vec(0i64..20 * GAP, 0..60),
            pages in prop::collection::vec(any::<bool>(), 60),
        ) {
            times.sort_unstable();
            let steps: Vec<Step<usize>> = times
                .iter()
                .enumerate()
                .map(|(index, &at)| Step { at, page_view: pages[index].then_some(index) })
                .collect();
            let found = visits(&steps, GAP);
            let total: u32 = found.iter().map(|visit| visit.events).sum();
            prop_assert_eq!(total as usize, steps.len());
            let mut next = 0;
            for (index, visit) in found.iter().enumerate() {
                let own = &steps[next..next + visit.events as usize];
                next += visit.events as usize;
                prop_assert_eq!((visit.start, visit.end), (own[0].at, own[own.len() - 1].at));
                prop_assert!(own.windows(2).all(|pair| pair[1].at - pair[0].at <= GAP));
                let views: Vec<usize> = own.iter().filter_map(|step| step.page_view).collect();
                prop_assert_eq!(visit.entry, views.first().copied());
                prop_assert_eq!(visit.exit, views.last().copied());
                if index > 0 {
                    prop_assert!(visit.start - found[index - 1].end > GAP);
                }
            }
        }
    }
}

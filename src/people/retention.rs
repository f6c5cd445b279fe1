//! A retention grid: cohorts of the people whose first start event falls in each period
//! of the range, and how many of them did the return event in each following period
//! (API.md, "retention"). Pure computation over periods `reports` lays out in the
//! caller's time zone.

use std::collections::HashMap;

use super::{Moment, Person};

/// Consecutive periods: `starts[i]` begins period `i`, which ends where the next begins
/// (the last entry only ends the one before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Periods {
    pub starts: Vec<Moment>,
}

impl Periods {
    /// The period `at` falls in, if any.
    pub fn index_of(&self, at: Moment) -> Option<usize> {
        let after = self.starts.partition_point(|&start| start <= at);
        (after > 0 && after < self.starts.len()).then(|| after - 1)
    }
}

/// One cohort: its period, its people, and per following period how many came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CohortCounts {
    pub period: usize,
    pub users: u64,
    pub returned: Vec<u64>,
}

/// The grid of `cohorts` cohorts (periods `0..cohorts`) with up to `periods` following
/// periods each, those begun by `now`. `first_starts` gives each person's first start
/// event ever, `returns` the periods each person did the return event in; people whose
/// first start is outside `within` (the range) or outside the cohorts' periods are in no
/// cohort.
pub fn grid(
    layout: &Periods,
    cohorts: usize,
    periods: usize,
    within: (Moment, Moment),
    now: Moment,
    first_starts: &HashMap<Person, Moment>,
    returns: &HashMap<Person, Vec<usize>>,
) -> Vec<CohortCounts> {
    let mut grid: Vec<CohortCounts> = (0..cohorts)
        .map(|period| {
            let begun = (1..=periods)
                .take_while(|k| {
                    layout
                        .starts
                        .get(period + k)
                        .is_some_and(|&start| start <= now)
                        && period + k + 1 < layout.starts.len()
                })
                .count();
            CohortCounts {
                period,
                users: 0,
                returned: vec![0; begun],
            }
        })
        .collect();
    let mut came_back = Vec::new();
    for (person, &first) in first_starts {
        if first < within.0 || first >= within.1 {
            continue;
        }
        let Some(cohort) = layout.index_of(first).filter(|&c| c < cohorts) else {
            continue;
        };
        let row = &mut grid[cohort];
        row.users += 1;
        came_back.clear();
        came_back.resize(row.returned.len(), false);
        for &period in returns.get(person).map(Vec::as_slice).unwrap_or_default() {
            if period > cohort && period - cohort <= came_back.len() {
                came_back[period - cohort - 1] = true;
            }
        }
        for (count, back) in row.returned.iter_mut().zip(&came_back) {
            *count += u64::from(*back);
        }
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohorts_count_returns_in_the_periods_after_theirs() {
        // Periods of 10 from 0; two cohorts, two following periods each.
        let layout = Periods {
            starts: vec![0, 10, 20, 30, 40],
        };
        let firsts = HashMap::from([(1, 2), (2, 5), (3, 12), (4, -3)]);
        let returns = HashMap::from([
            (1, vec![0, 1]), // its own period, and the next
            (2, vec![2]),
            (3, vec![2, 3]), // its 1st and 2nd following periods
            (4, vec![1]),    // first start before the range: no cohort
        ]);
        let grid = grid(&layout, 2, 2, (0, 20), 100, &firsts, &returns);
        assert_eq!(
            grid,
            vec![
                CohortCounts {
                    period: 0,
                    users: 2,
                    returned: vec![1, 1]
                },
                CohortCounts {
                    period: 1,
                    users: 1,
                    returned: vec![1, 1]
                },
            ]
        );
        // At 25 the second cohort's 2nd following period (30..40) has not begun.
        let early = super::grid(&layout, 2, 2, (0, 20), 25, &firsts, &returns);
        assert_eq!(early[1].returned, vec![1]);
    }
}

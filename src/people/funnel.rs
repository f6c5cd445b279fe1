//! A funnel over people's timelines: who did step 1 in the range, then each next step at
//! or after the previous one and within the window of their step 1 (API.md, "funnel").
//! Pure computation: `reports` gathers each person's step times, this counts them.

use super::{Moment, Person, median_seconds};

/// A funnel's steps as slots: steps asking for the same events (`S`: an event type, or
/// one with a filter) share a slot, so an event can serve one step only (a funnel `A, A`
/// needs two `A`s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelShape<S = String> {
    /// What each slot asks for, in first-use order.
    pub slot_types: Vec<S>,
    /// Each step's slot.
    pub step_slots: Vec<usize>,
}

impl<S: PartialEq + Clone> FunnelShape<S> {
    pub fn of(steps: &[S]) -> FunnelShape<S> {
        let mut slot_types: Vec<S> = Vec::new();
        let step_slots = steps
            .iter()
            .map(|step| match slot_types.iter().position(|t| t == step) {
                Some(slot) => slot,
                None => {
                    slot_types.push(step.clone());
                    slot_types.len() - 1
                }
            })
            .collect();
        FunnelShape {
            slot_types,
            step_slots,
        }
    }
}

/// How far one person got: the steps reached (≥ 1) and the time from each reached step
/// to the next, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub depth: usize,
    pub gaps_ms: Vec<i64>,
}

/// The deepest path of one person whose slot times are `times` (each ascending): each
/// step-1 event in `from..to` is tried, earliest first, and each next step takes the
/// earliest unused event of its slot at or after the previous step, within `window_ms`
/// of step 1 (the earliest is never worse for the steps after it). The first step-1 event
/// reaching the deepest step counts; `None` without one in the range.
pub fn progress<S>(
    shape: &FunnelShape<S>,
    times: &[Vec<Moment>],
    (from, to): (Moment, Moment),
    window_ms: i64,
) -> Option<Progress> {
    let steps = shape.step_slots.len();
    let starts = &times[shape.step_slots[0]];
    let first = starts.partition_point(|&t| t < from);
    let mut best: Option<Progress> = None;
    let mut used = vec![0usize; shape.slot_types.len()];
    for (index, &start) in starts.iter().enumerate().skip(first) {
        if start >= to {
            break;
        }
        let deadline = start.saturating_add(window_ms);
        // `used[slot]`: the first index of the slot not yet taken on this path.
        used.iter_mut().for_each(|next| *next = 0);
        used[shape.step_slots[0]] = index + 1;
        let (mut previous, mut gaps_ms) = (start, Vec::new());
        for &slot in &shape.step_slots[1..] {
            let slot_times = &times[slot];
            let at = slot_times
                .partition_point(|&t| t < previous)
                .max(used[slot]);
            match slot_times.get(at) {
                Some(&t) if t <= deadline => {
                    gaps_ms.push(t - previous);
                    previous = t;
                    used[slot] = at + 1;
                }
                _ => break,
            }
        }
        let depth = gaps_ms.len() + 1;
        if best.as_ref().is_none_or(|best| depth > best.depth) {
            best = Some(Progress { depth, gaps_ms });
            if depth == steps {
                break;
            }
        }
    }
    best
}

/// The funnel of people's step events, given as (person, slot, time) in any order: each
/// person's progress (`progress`), counted (`count`).
pub fn run<S>(
    shape: &FunnelShape<S>,
    mut moments: Vec<(Person, usize, Moment)>,
    range: (Moment, Moment),
    window_ms: i64,
) -> FunnelCounts {
    moments.sort_unstable();
    let mut times: Vec<Vec<Moment>> = vec![Vec::new(); shape.slot_types.len()];
    let people = moments
        .chunk_by(|a, b| a.0 == b.0)
        .filter_map(|person| {
            times.iter_mut().for_each(Vec::clear);
            for &(_, slot, at) in person {
                times[slot].push(at);
            }
            progress(shape, &times, range, window_ms)
        })
        .collect::<Vec<_>>();
    count(shape.step_slots.len(), people)
}

/// A funnel's counts: people per step and, per step after the first, the median time from
/// the previous step among the people who reached it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelCounts {
    pub users: Vec<u64>,
    pub median_seconds_from_previous: Vec<Option<f64>>,
}

/// Counts people's progress through a funnel of `steps` steps.
pub fn count<I>(steps: usize, people: I) -> FunnelCounts
where
    I: IntoIterator<Item = Progress>,
{
    let mut users = vec![0u64; steps];
    let mut gaps: Vec<Vec<i64>> = vec![Vec::new(); steps];
    for progress in people {
        for reached in users.iter_mut().take(progress.depth) {
            *reached += 1;
        }
        for (step, gap) in progress.gaps_ms.iter().enumerate() {
            gaps[step + 1].push(*gap);
        }
    }
    let median_seconds_from_previous = gaps
        .iter_mut()
        .enumerate()
        .map(|(step, gaps)| {
            if step == 0 {
                None
            } else {
                median_seconds(gaps)
            }
        })
        .collect();
    FunnelCounts {
        users,
        median_seconds_from_previous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(steps: &[&str]) -> FunnelShape {
        FunnelShape::of(&steps.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_deepest_path_counts_and_the_window_runs_from_step_one() {
        let funnel = shape(&["a", "b", "c"]);
        // a at 0 reaches b at 5 but c at 20 is past the window of 10; a at 12 reaches both.
        let times = vec![vec![0, 12], vec![5, 14], vec![20]];
        let found = progress(&funnel, &times, (0, 100), 10).unwrap();
        assert_eq!(
            found,
            Progress {
                depth: 3,
                gaps_ms: vec![2, 6]
            }
        );
        // Step 1 outside the range: nobody.
        assert_eq!(progress(&funnel, &times, (13, 100), 10), None);
    }

    #[test]
    fn a_repeated_type_needs_another_event() {
        let funnel = shape(&["a", "a"]);
        assert_eq!(funnel.step_slots, vec![0, 0]);
        let once = vec![vec![3]];
        assert_eq!(progress(&funnel, &once, (0, 10), 10).unwrap().depth, 1);
        let twice = vec![vec![3, 3]];
        assert_eq!(
            progress(&funnel, &twice, (0, 10), 10).unwrap(),
            Progress {
                depth: 2,
                gaps_ms: vec![0]
            }
        );
    }

    #[test]
    fn medians_are_of_the_people_who_reached_the_step() {
        let people = [
            Progress {
                depth: 3,
                gaps_ms: vec![1_000, 4_000],
            },
            Progress {
                depth: 2,
                gaps_ms: vec![3_000],
            },
            Progress {
                depth: 1,
                gaps_ms: vec![],
            },
        ];
        let counts = count(3, people);
        assert_eq!(counts.users, vec![3, 2, 1]);
        assert_eq!(
            counts.median_seconds_from_previous,
            vec![None, Some(2.0), Some(4.0)]
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// The deepest step a person reaches, by trying every assignment of their events to
    /// the steps (the contract read literally, no greedy choice).
    fn deepest(
        steps: &[usize],
        events: &[(usize, Moment)],
        range: (Moment, Moment),
        window: i64,
    ) -> usize {
        fn extend(
            steps: &[usize],
            events: &[(usize, Moment)],
            used: &mut Vec<bool>,
            previous: Moment,
            deadline: Moment,
        ) -> usize {
            let Some(&wanted) = steps.first() else {
                return 0;
            };
            let mut best = 0;
            for (index, &(kind, at)) in events.iter().enumerate() {
                if used[index] || kind != wanted || at < previous || at > deadline {
                    continue;
                }
                used[index] = true;
                best = best.max(1 + extend(&steps[1..], events, used, at, deadline));
                used[index] = false;
            }
            best
        }
        let mut best = 0;
        for (index, &(kind, at)) in events.iter().enumerate() {
            if kind != steps[0] || at < range.0 || at >= range.1 {
                continue;
            }
            let mut used = vec![false; events.len()];
            used[index] = true;
            best = best.max(1 + extend(&steps[1..], events, &mut used, at, at + window));
        }
        best
    }

    proptest! {
        #[test]
        fn people_per_step_match_an_exhaustive_search(
            steps in proptest::collection::vec(0usize..3, 2..5),
            people in proptest::collection::vec(
                proptest::collection::vec((0usize..3, 0i64..40), 0..7), 1..12),
            window in 1i64..25,
        ) {
            let names: Vec<String> = steps.iter().map(|kind| format!("t{kind}")).collect();
            let shape = FunnelShape::of(&names);
            let range = (5, 30);
            let mut moments = Vec::new();
            let mut expected = vec![0u64; steps.len()];
            for (person, events) in people.iter().enumerate() {
                for &(kind, at) in events {
                    // Events of types outside the funnel are not gathered.
                    if let Some(slot) = shape.slot_types.iter().position(|t| *t == format!("t{kind}")) {
                        moments.push((person as Person, slot, at));
                    }
                }
                let depth = deepest(&steps, events, range, window);
                for reached in expected.iter_mut().take(depth) {
                    *reached += 1;
                }
            }
            let counts = run(&shape, moments, range, window);
            prop_assert_eq!(counts.users, expected);
        }
    }
}

//! People's visits (`people::sessions`) folded with a UTC day's cells: per partner and
//! subsystem, and per partition (humans', bots'), the day's visit tally and its entry and
//! exit pages (visits and people per page), so the summary and the `entryPage` /
//! `exitPage` breakdowns add up days instead of reading every event. Only a day's fold
//! writes them: a visit needs the events around it, which an hour does not have.
//!
//! Visits are counted with the folded session gap (`sessions::FOLDED_GAP_MS`), each
//! person's events of one partition on their own (a crawler's visits are bots').

use std::collections::BTreeMap;

use uuid::Uuid;

use super::breakdown_cells::{ValueCounts, ValueDelta};
use super::breakdown_fold::CellName;
use super::sketch::ActorSketch;
use super::{Hour, is_bot};
use crate::model::Event;
use crate::people::sessions::{FOLDED_GAP_MS, PAGE_VIEW_EVENT_TYPE, Step, VisitTally, visits};
use crate::people::{Person, person_key};
use datasketches::hll::Coupon;

/// The dimension of a day's visit tally cell (no API dimension name starts with `@`).
const VISITS_DIMENSION: &str = "@visits";
/// The breakdown dimensions visits give, by the page a visit enters or leaves on.
pub const ENTRY_PAGE: &str = "entryPage";
pub const EXIT_PAGE: &str = "exitPage";

/// The visit tally cell of one partition, partner-wide or of one subsystem.
pub fn visits_cell(subsystem: Option<Uuid>, bots: bool) -> CellName {
    page_cell(VISITS_DIMENSION, subsystem, bots)
}

/// The `entryPage` or `exitPage` cell of one partition, partner-wide or of one subsystem.
pub fn page_cell(dimension: &str, subsystem: Option<Uuid>, bots: bool) -> CellName {
    CellName {
        bots,
        filter: subsystem.map(|id| ("subsystem".to_string(), id.to_string())),
        dimension: dimension.to_string(),
    }
}

impl CellName {
    /// Whether this names a visit tally cell.
    pub fn is_visits(&self) -> bool {
        self.dimension == VISITS_DIMENSION
    }
}

/// A step as visits count it: a page view's page, if it has one.
pub type PageStep = Step<Option<String>>;

/// Visits counted over people: the tally, and each entry and exit page's visits with
/// their people (as coupons, for the breakdown's `uniqueUsers`).
#[derive(Debug, Default)]
pub struct VisitCount {
    pub tally: VisitTally,
    pub entries: ValueCounts,
    pub exits: ValueCounts,
}

impl VisitCount {
    /// Adds one person's visits, their events `steps` (in any order).
    pub fn add_person(&mut self, actor: Option<Coupon>, steps: &mut Vec<PageStep>, gap_ms: i64) {
        for visit in visits(steps, gap_ms) {
            self.tally.add(&visit);
            for (pages, page) in [
                (&mut self.entries, &visit.entry),
                (&mut self.exits, &visit.exit),
            ] {
                if let Some(Some(page)) = page {
                    let counts = pages
                        .entry(page.clone())
                        .or_insert_with(ValueDelta::default);
                    counts.events += 1;
                    counts.actors.extend(actor);
                }
            }
        }
    }
}

/// A step of `event` (its type numbered by the caller), with its page for a page view.
pub fn page_step(event: &Event, event_type: u32) -> PageStep {
    let page_view = (event.event_type == PAGE_VIEW_EVENT_TYPE).then(|| {
        event
            .enrichment
            .as_ref()
            .and_then(|enrichment| enrichment.page.clone())
            .filter(|page| !page.is_empty())
    });
    Step {
        at: event.timestamp.timestamp_millis(),
        event_type,
        page_view,
    }
}

/// What a day's visit cell holds: its tally, or its pages' visits.
#[derive(Debug, Clone, PartialEq)]
pub enum VisitCell {
    Tally(VisitTally),
    Pages(ValueCounts),
}

#[derive(Debug)]
struct Seen {
    person: Person,
    actor: Coupon,
    subsystem: Uuid,
    bot: bool,
    step: PageStep,
}

/// The events of a recount, kept for their visits.
#[derive(Debug, Default)]
pub struct VisitsRecount {
    seen: Vec<Seen>,
    type_index: std::collections::HashMap<String, u32>,
}

impl VisitsRecount {
    /// Keeps `event` under its person (resolved by the caller; an event with neither id
    /// belongs to nobody, and is in no visit).
    pub fn add(&mut self, event: &Event) {
        let Some(actor) = event.actor() else {
            return;
        };
        // Looked up before inserting: a fold does this for every event of a day.
        let event_type = match self.type_index.get(&event.event_type) {
            Some(index) => *index,
            None => {
                let next = u32::try_from(self.type_index.len()).unwrap_or(u32::MAX);
                self.type_index.insert(event.event_type.clone(), next);
                next
            }
        };
        self.seen.push(Seen {
            person: person_key(actor),
            actor: ActorSketch::coupon(actor),
            subsystem: event.subsystem_id,
            bot: is_bot(event),
            step: page_step(event, event_type),
        });
    }

    /// Each UTC day's (by its first hour) visit cells, per scope and partition: the tally
    /// always, the pages when some visit has one.
    pub fn day_cells(&self) -> BTreeMap<(Hour, CellName), VisitCell> {
        // (day, scope, partition, person, event): every event partner-wide and in its
        // subsystem, so each group below is one person's events of one cell.
        let mut keyed: Vec<(Hour, Option<Uuid>, bool, Person, usize)> =
            Vec::with_capacity(self.seen.len() * 2);
        for (index, seen) in self.seen.iter().enumerate() {
            let Some(at) = chrono::DateTime::from_timestamp_millis(seen.step.at) else {
                continue;
            };
            let day = Hour::of(at).day();
            for scope in [None, Some(seen.subsystem)] {
                keyed.push((day, scope, seen.bot, seen.person, index));
            }
        }
        keyed.sort_unstable();
        let mut counts: BTreeMap<(Hour, Option<Uuid>, bool), VisitCount> = BTreeMap::new();
        for group in keyed.chunk_by(|a, b| (a.0, a.1, a.2, a.3) == (b.0, b.1, b.2, b.3)) {
            let (day, scope, bots, _, first) = group[0];
            let mut steps: Vec<PageStep> = group
                .iter()
                .map(|key| self.seen[key.4].step.clone())
                .collect();
            counts.entry((day, scope, bots)).or_default().add_person(
                Some(self.seen[first].actor),
                &mut steps,
                FOLDED_GAP_MS,
            );
        }
        let mut cells = BTreeMap::new();
        for ((day, scope, bots), count) in counts {
            cells.insert(
                (day, visits_cell(scope, bots)),
                VisitCell::Tally(count.tally),
            );
            for (dimension, pages) in [(ENTRY_PAGE, count.entries), (EXIT_PAGE, count.exits)] {
                if !pages.is_empty() {
                    let name = page_cell(dimension, scope, bots);
                    cells.insert((day, name), VisitCell::Pages(pages));
                }
            }
        }
        cells
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Enrichment;
    use crate::model::test_support::sample_event;
    use chrono::{TimeZone, Utc};

    fn event(kind: &str, user: &str, page: Option<&str>, minute: i64) -> Event {
        let mut event = sample_event(&format!("{user}-{minute}-{kind}"));
        event.event_type = kind.to_string();
        event.timestamp = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap()
            + chrono::Duration::minutes(minute);
        event.user_id = Some(user.to_string());
        event.enrichment = Some(Enrichment {
            page: page.map(str::to_string),
            ..Enrichment::default()
        });
        event
    }

    #[test]
    fn a_days_cells_hold_its_visits_per_scope_with_entry_and_exit_pages() {
        let mut recount = VisitsRecount::default();
        for event in [
            event("page_view", "u1", Some("/"), 600),
            event("page_view", "u1", Some("/pricing"), 610),
            event("signup", "u1", None, 620),
            event("page_view", "u1", Some("/blog"), 700),
            event("page_view", "u2", Some("/blog"), 600),
            // The next day: a visit of its own.
            event("page_view", "u2", Some("/"), 24 * 60 + 5),
        ] {
            recount.add(&event);
        }
        let cells = recount.day_cells();
        let day = Hour::of(Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap());
        let subsystem = sample_event("x").subsystem_id;
        let VisitCell::Tally(tally) = &cells[&(day, visits_cell(None, false))] else {
            panic!("a tally");
        };
        assert_eq!((tally.visits, tally.bounces), (3, 2));
        assert_eq!(tally.median_duration_seconds(), Some(0.0));
        assert_eq!(
            cells[&(day, visits_cell(Some(subsystem), false))],
            cells[&(day, visits_cell(None, false))]
        );
        let VisitCell::Pages(entries) = &cells[&(day, page_cell(ENTRY_PAGE, None, false))] else {
            panic!("pages");
        };
        let visits_of = |pages: &ValueCounts, page: &str| pages.get(page).map(|v| v.events);
        assert_eq!(visits_of(entries, "/"), Some(1));
        assert_eq!(visits_of(entries, "/blog"), Some(2));
        let VisitCell::Pages(exits) = &cells[&(day, page_cell(EXIT_PAGE, None, false))] else {
            panic!("pages");
        };
        assert_eq!(
            visits_of(exits, "/pricing"),
            Some(1),
            "the last page view, not the sign-up"
        );
        let next = Hour(day.0 + 24);
        let VisitCell::Tally(next_day) = &cells[&(next, visits_cell(None, false))] else {
            panic!("a tally");
        };
        assert_eq!(next_day.visits, 1);
        assert!(
            !cells.contains_key(&(day, visits_cell(None, true))),
            "no bots"
        );
    }
}

//! People's postings (`people::postings`) folded with the breakdown cells: every event of
//! an hour (or UTC day) goes into its type's postings, partner-wide and for its
//! subsystem, as a cell of its own beside the breakdown cells, so the stores keep, read,
//! refold and verify it the same way.
//!
//! The stores give each event its person before folding it (`Joins::resolve`): an
//! anonymous id joined to a user counts as that user. A join recorded after a fold marks
//! the hours that hold the anonymous id's events, which are then folded again.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::breakdown_fold::CellName;
use super::{Hour, is_bot};
use crate::model::Event;
use crate::people::postings::Posting;
use crate::people::{Person, person_key};

/// The dimension of a postings cell starts with this (no API dimension name does).
const POSTINGS_PREFIX: &str = "@people ";

/// The postings cell of `event_type`, partner-wide or of one subsystem.
pub fn postings_cell(event_type: &str, subsystem: Option<Uuid>) -> CellName {
    CellName {
        bots: false,
        filter: subsystem.map(|id| ("subsystem".to_string(), id.to_string())),
        dimension: format!("{POSTINGS_PREFIX}{event_type}"),
    }
}

impl CellName {
    /// Whether this names a postings cell rather than a breakdown table.
    pub fn is_postings(&self) -> bool {
        self.dimension.starts_with(POSTINGS_PREFIX)
    }
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    at_ms: i64,
    event_type: u32,
    subsystem: Uuid,
    person: Person,
    bot: bool,
}

/// The events of a recount, kept for their postings.
#[derive(Debug, Default)]
pub struct PostingsRecount {
    seen: Vec<Seen>,
    event_types: Vec<String>,
    type_index: HashMap<String, u32>,
}

impl PostingsRecount {
    /// Keeps `event` under its actor, its person once resolved (an event with neither id
    /// belongs to nobody, and has no posting).
    pub fn add(&mut self, event: &Event) {
        let Some(actor) = event.actor() else {
            return;
        };
        let event_type = match self.type_index.get(&event.event_type) {
            Some(index) => *index,
            None => {
                let next = u32::try_from(self.event_types.len())
                    .expect("fewer than 2^32 event types in one recount");
                self.event_types.push(event.event_type.clone());
                self.type_index.insert(event.event_type.clone(), next);
                next
            }
        };
        self.seen.push(Seen {
            at_ms: event.timestamp.timestamp_millis(),
            event_type,
            subsystem: event.subsystem_id,
            person: person_key(actor),
            bot: is_bot(event),
        });
    }

    /// The postings of every hour (`days` false) or UTC day (by its first hour), type and
    /// scope.
    pub fn cells(&self, days: bool) -> BTreeMap<(Hour, CellName), Vec<Posting>> {
        let mut by_cell: HashMap<(Hour, u32, Option<Uuid>), Vec<Posting>> = HashMap::new();
        for seen in &self.seen {
            let Some(at) = chrono::DateTime::from_timestamp_millis(seen.at_ms) else {
                continue;
            };
            let hour = Hour::of(at);
            let period = if days { hour.day() } else { hour };
            let offset = seen.at_ms - period.start().timestamp_millis();
            let posting = Posting {
                person: seen.person,
                offset_ms: u32::try_from(offset).expect("an offset within a day"),
                bot: seen.bot,
            };
            for scope in [None, Some(seen.subsystem)] {
                by_cell
                    .entry((period, seen.event_type, scope))
                    .or_default()
                    .push(posting);
            }
        }
        by_cell
            .into_iter()
            .map(|((period, event_type, scope), mut postings)| {
                postings.sort_unstable();
                postings.dedup();
                let name = postings_cell(&self.event_types[event_type as usize], scope);
                ((period, name), postings)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::sample_event;
    use crate::people::Joins;
    use chrono::{TimeZone, Utc};

    fn event(user: Option<&str>, anonymous: Option<&str>, minute: u32) -> Event {
        let mut event = sample_event(&format!("{user:?}{anonymous:?}{minute}"));
        event.timestamp = Utc.with_ymd_and_hms(2026, 11, 20, 10, minute, 0).unwrap();
        event.user_id = user.map(str::to_string);
        event.anonymous_id = anonymous.map(str::to_string);
        event
    }

    #[test]
    fn resolved_anonymous_events_count_as_the_user_they_are_joined_to() {
        let mut joins = Joins::default();
        joins.insert("a1".into(), "u1".into());
        let mut recount = PostingsRecount::default();
        for mut event in [
            event(None, Some("a1"), 5),
            event(None, Some("a2"), 6),
            event(Some("u1"), None, 7),
            event(None, None, 8),
        ] {
            joins.resolve(&mut event);
            recount.add(&event);
        }

        let cells = recount.cells(false);
        let hour = Hour::of(Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap());
        let sample = event(None, None, 0);
        let all = &cells[&(hour, postings_cell(&sample.event_type, None))];
        let people: Vec<(Person, u32)> = all.iter().map(|p| (p.person, p.offset_ms)).collect();
        let mut expected = vec![
            (person_key("u1"), 300_000),
            (person_key("a2"), 360_000),
            (person_key("u1"), 420_000),
        ];
        expected.sort_unstable();
        assert_eq!(people, expected, "the event with neither id has no posting");
        let scoped = postings_cell(&sample.event_type, Some(sample.subsystem_id));
        assert_eq!(&cells[&(hour, scoped)], all);

        let days = recount.cells(true);
        let day = &days[&(hour.day(), postings_cell(&sample.event_type, None))];
        let earliest = day.iter().map(|posting| posting.offset_ms).min();
        assert_eq!(
            earliest,
            Some(10 * 3_600_000 + 300_000),
            "from the day's start"
        );
        assert!(postings_cell("x", None).is_postings());
    }
}

//! People's postings (`people::postings`) folded with the breakdown cells: every event of
//! an hour (or UTC day) goes into its type's postings, partner-wide and for its
//! subsystem, as a cell of its own beside the breakdown cells, so the stores keep, read,
//! refold and verify it the same way.
//!
//! People are resolved when the fold runs: an anonymous id joined to a user counts as that
//! user (the store looks up `anonymous_ids` first). A join recorded after a fold marks the
//! hours that hold the anonymous id's events, which are then folded again.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::breakdown_fold::CellName;
use super::{Hour, is_bot};
use crate::model::Event;
use crate::people::postings::Posting;
use crate::people::{Joins, Person, person_key};

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
enum Actor {
    Person(Person),
    /// An index into `anonymous_ids`: resolved through the joins when the cells are made.
    Anonymous(u32),
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    at_ms: i64,
    event_type: u32,
    subsystem: Uuid,
    actor: Actor,
    bot: bool,
}

/// The events of a recount, kept for their postings.
#[derive(Debug, Default)]
pub struct PostingsRecount {
    seen: Vec<Seen>,
    event_types: Vec<String>,
    type_index: HashMap<String, u32>,
    anonymous_ids: Vec<String>,
    anonymous_index: HashMap<String, u32>,
}

fn intern(names: &mut Vec<String>, index: &mut HashMap<String, u32>, name: &str) -> u32 {
    if let Some(found) = index.get(name) {
        return *found;
    }
    let next = u32::try_from(names.len()).expect("fewer than 2^32 names in one recount");
    names.push(name.to_string());
    index.insert(name.to_string(), next);
    next
}

impl PostingsRecount {
    /// Keeps `event` (an event with neither id belongs to nobody, and has no posting).
    pub fn add(&mut self, event: &Event) {
        let actor = match (&event.user_id, &event.anonymous_id) {
            (Some(user), _) => Actor::Person(person_key(user)),
            (None, Some(anonymous)) => Actor::Anonymous(intern(
                &mut self.anonymous_ids,
                &mut self.anonymous_index,
                anonymous,
            )),
            (None, None) => return,
        };
        let event_type = intern(
            &mut self.event_types,
            &mut self.type_index,
            &event.event_type,
        );
        self.seen.push(Seen {
            at_ms: event.timestamp.timestamp_millis(),
            event_type,
            subsystem: event.subsystem_id,
            actor,
            bot: is_bot(event),
        });
    }

    /// The anonymous ids of the events without a user id: the joins to look up.
    pub fn anonymous_ids(&self) -> &[String] {
        &self.anonymous_ids
    }

    /// The postings of every hour (`days` false) or UTC day (by its first hour), type and
    /// scope, with people as `joins` resolve them.
    pub fn cells(&self, joins: &Joins, days: bool) -> BTreeMap<(Hour, CellName), Vec<Posting>> {
        let resolved: Vec<Person> = self
            .anonymous_ids
            .iter()
            .map(|id| person_key(joins.user_of(id).unwrap_or(id)))
            .collect();
        let mut by_cell: HashMap<(Hour, u32, Option<Uuid>), Vec<Posting>> = HashMap::new();
        for seen in &self.seen {
            let Some(at) = chrono::DateTime::from_timestamp_millis(seen.at_ms) else {
                continue;
            };
            let hour = Hour::of(at);
            let period = if days { hour.day() } else { hour };
            let offset = seen.at_ms - period.start().timestamp_millis();
            let posting = Posting {
                person: match seen.actor {
                    Actor::Person(person) => person,
                    Actor::Anonymous(index) => resolved[index as usize],
                },
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
    use chrono::{TimeZone, Utc};

    fn event(user: Option<&str>, anonymous: Option<&str>, minute: u32) -> Event {
        let mut event = sample_event(&format!("{user:?}{anonymous:?}{minute}"));
        event.timestamp = Utc.with_ymd_and_hms(2026, 11, 20, 10, minute, 0).unwrap();
        event.user_id = user.map(str::to_string);
        event.anonymous_id = anonymous.map(str::to_string);
        event
    }

    #[test]
    fn anonymous_events_count_as_the_user_they_are_joined_to() {
        let mut recount = PostingsRecount::default();
        recount.add(&event(None, Some("a1"), 5));
        recount.add(&event(None, Some("a2"), 6));
        recount.add(&event(Some("u1"), None, 7));
        recount.add(&event(None, None, 8));
        assert_eq!(recount.anonymous_ids(), ["a1", "a2"]);
        let mut joins = Joins::default();
        joins.insert("a1".into(), "u1".into());

        let cells = recount.cells(&joins, false);
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

        let days = recount.cells(&joins, true);
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

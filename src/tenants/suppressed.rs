//! The people a partner's erasures asked to suppress: their new events are dropped at
//! ingest (API.md, "Erasure", `suppress`). Looked up per request through the directory's
//! cache, so a partner without any costs one cached lookup.

use std::collections::HashSet;

use crate::model::{Erasure, ErasureSubject, Event};

#[derive(Debug, Default)]
pub struct Suppressed {
    /// Suppressed users: their events, and those without a user id from their anonymous ids.
    users: HashSet<String>,
    users_anonymous_ids: HashSet<String>,
    /// Suppressed anonymous ids: every event carrying one.
    anonymous_ids: HashSet<String>,
}

impl Suppressed {
    pub fn of<'a>(erasures: impl IntoIterator<Item = &'a Erasure>) -> Suppressed {
        let mut suppressed = Suppressed::default();
        for erasure in erasures.into_iter().filter(|erasure| erasure.suppress) {
            match &erasure.subject {
                ErasureSubject::UserId(user) => {
                    suppressed.users.insert(user.clone());
                    let joined = erasure.anonymous_ids.iter().cloned();
                    suppressed.users_anonymous_ids.extend(joined);
                }
                ErasureSubject::AnonymousId(anonymous) => {
                    suppressed.anonymous_ids.insert(anonymous.clone());
                }
                // A purged partner is inactive: its keys send nothing.
                ErasureSubject::PartnerId(_) => {}
            }
        }
        suppressed
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.anonymous_ids.is_empty()
    }

    /// Whether `event` belongs to a suppressed person (as `Erasure::covers` decides).
    pub fn covers(&self, event: &Event) -> bool {
        let anonymous = event.anonymous_id.as_deref();
        if anonymous.is_some_and(|id| self.anonymous_ids.contains(id)) {
            return true;
        }
        match event.user_id.as_deref() {
            Some(user) => self.users.contains(user),
            None => anonymous.is_some_and(|id| self.users_anonymous_ids.contains(id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::{anonymous_event, sample_event};
    use uuid::Uuid;

    #[test]
    fn only_erasures_asking_for_it_suppress_and_they_match_as_erasure_covers() {
        let mut user = Erasure::new(Uuid::nil(), ErasureSubject::UserId("u1".into()), true);
        user.anonymous_ids.insert("a1".into());
        let anonymous = Erasure::new(Uuid::nil(), ErasureSubject::AnonymousId("a2".into()), true);
        let kept = Erasure::new(Uuid::nil(), ErasureSubject::AnonymousId("a3".into()), false);
        let suppressed = Suppressed::of([&user, &anonymous, &kept]);
        let at = "2026-11-20T10:00:00Z";
        let mut events = vec![
            sample_event("u1's"),
            anonymous_event("a1's", "a1", at),
            anonymous_event("a2's", "a2", at),
            anonymous_event("a3's", "a3", at),
        ];
        let mut someone_else = anonymous_event("u9 with a1", "a1", at);
        someone_else.user_id = Some("u9".into());
        events.push(someone_else);
        let erasures = [&user, &anonymous, &kept];
        for event in &events {
            let expected = erasures
                .iter()
                .any(|erasure| erasure.suppress && erasure.covers_event(event));
            assert_eq!(suppressed.covers(event), expected, "{}", event.event_id);
        }
        assert!(suppressed.covers(&events[0]) && !suppressed.covers(&events[3]));
    }
}

//! One person's events (GDPR access and portability): as the contract defines a person,
//! the events whose `userId` is the user, and those with no `userId` whose anonymous id is
//! joined to the user (read from the store's joins once, when the export starts).

use std::collections::HashSet;

use crate::model::Event;

#[derive(Debug, Clone)]
pub struct PersonFilter {
    user: String,
    anonymous_ids: HashSet<String>,
}

impl PersonFilter {
    pub fn new(user: String, anonymous_ids: impl IntoIterator<Item = String>) -> PersonFilter {
        PersonFilter {
            user,
            anonymous_ids: anonymous_ids.into_iter().collect(),
        }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether `event`'s person is this user.
    pub fn owns(&self, event: &Event) -> bool {
        match (&event.user_id, &event.anonymous_id) {
            (Some(user), _) => *user == self.user,
            (None, Some(anonymous)) => self.anonymous_ids.contains(anonymous),
            (None, None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::{anonymous_event, sample_event};

    const T: &str = "2026-11-20T10:00:00Z";

    #[test]
    fn a_person_is_their_user_id_and_their_joined_anonymous_ids_without_one() {
        let person = PersonFilter::new("u1".into(), ["a1".to_string()]);
        assert!(person.owns(&sample_event("own")));
        assert!(person.owns(&anonymous_event("joined", "a1", T)));
        assert!(!person.owns(&anonymous_event("stranger", "a2", T)));
        let mut other_user = anonymous_event("other", "a1", T);
        other_user.user_id = Some("u2".into());
        assert!(
            !person.owns(&other_user),
            "an event with a user id is that user's"
        );
    }
}

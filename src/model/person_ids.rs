//! A person as the contract defines one: a user id and the anonymous ids joined to it.
//! Their events are those whose `userId` is the user, and those with no `userId` whose
//! anonymous id is joined to the user. One person's export and a user's erasure both
//! select by it.

use std::collections::BTreeSet;

use crate::model::Event;

#[derive(Debug, Clone)]
pub struct PersonIds {
    user: String,
    anonymous_ids: BTreeSet<String>,
}

impl PersonIds {
    pub fn new(user: String, anonymous_ids: impl IntoIterator<Item = String>) -> PersonIds {
        PersonIds {
            user,
            anonymous_ids: anonymous_ids.into_iter().collect(),
        }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether `event`'s person is this user.
    pub fn owns(&self, event: &Event) -> bool {
        owned_by(
            &self.user,
            &self.anonymous_ids,
            (event.user_id.as_deref(), event.anonymous_id.as_deref()),
        )
    }
}

/// Whether an event with `ids` (user id, anonymous id) belongs to `user`, whose joined
/// anonymous ids are `joined`.
pub fn owned_by(user: &str, joined: &BTreeSet<String>, ids: (Option<&str>, Option<&str>)) -> bool {
    match ids {
        (Some(id), _) => id == user,
        (None, Some(anonymous)) => joined.contains(anonymous),
        (None, None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::{anonymous_event, sample_event};

    const T: &str = "2026-11-20T10:00:00Z";

    #[test]
    fn a_person_is_their_user_id_and_their_joined_anonymous_ids_without_one() {
        let person = PersonIds::new("u1".into(), ["a1".to_string()]);
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

//! What the embedded writer remembers of people's joins between batches, so an
//! identity-heavy ingest does not look up the same rows in every transaction: a join
//! (`partner | anonymous id` → user) once read or written holds for the life of the
//! process, since the first user wins and is never replaced.
//!
//! Only what a committed transaction holds is remembered (`Remembered::committed`): a
//! failed commit leaves nothing that would skip a later write. Whatever deletes a join
//! (an erasure) must forget it here too.

use std::sync::Arc;

use moka::sync::Cache;

/// Joins remembered: (partner, anonymous id) keys, about 60 bytes each with the user.
const REMEMBERED_JOINS: u64 = 200_000;

pub(super) struct Remembered {
    users: Cache<Vec<u8>, Arc<str>>,
}

/// What one transaction learnt, remembered once it commits.
#[derive(Default)]
pub(super) struct Learnt {
    pub(super) users: Vec<(Vec<u8>, Arc<str>)>,
}

impl Default for Remembered {
    fn default() -> Self {
        Remembered {
            users: Cache::new(REMEMBERED_JOINS),
        }
    }
}

impl Remembered {
    /// The user the join key `partner | anonymous id` names, if remembered.
    pub(super) fn user(&self, join_key: &[u8]) -> Option<Arc<str>> {
        self.users.get(join_key)
    }

    /// Forgets the join at `join_key` (its anonymous id's events were erased).
    pub(super) fn forget(&self, join_key: &[u8]) {
        self.users.invalidate(join_key);
    }

    /// Forgets every join (a partner was purged).
    pub(super) fn forget_all(&self) {
        self.users.invalidate_all();
    }

    /// The transaction that learnt `learnt` has committed.
    pub(super) fn committed(&self, learnt: Learnt) {
        for (key, user) in learnt.users {
            self.users.insert(key, user);
        }
    }
}

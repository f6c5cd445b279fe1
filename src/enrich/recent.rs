//! The few user agents each thread classified last, looked at before the shared cache: a
//! batch from one browser repeats its agent on every event, and a look here (a length
//! check and a compare) costs a fraction of the shared cache's hash, clock read and
//! bookkeeping. Entries are tagged with their `UserAgents`' owner number, so enrichers
//! with other settings (tests build many) never see each other's answers.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::agent::Agent;

/// Agents kept per thread: a request's events come from one or a few agents, and a
/// linear scan of this many stays cheaper than one hash of a user agent.
const SLOTS: usize = 8;

static NEXT_OWNER: AtomicU64 = AtomicU64::new(0);

/// A number no other `UserAgents` of this process has.
pub(super) fn new_owner() -> u64 {
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

struct Slot {
    owner: u64,
    user_agent: Box<str>,
    agent: Arc<Agent>,
}

#[derive(Default)]
struct Recent {
    slots: Vec<Slot>,
    /// The slot the next new agent replaces once every slot is taken.
    next: usize,
}

thread_local! {
    static RECENT: RefCell<Recent> = RefCell::new(Recent::default());
}

/// The agent this thread last classified as `user_agent` for `owner`, if it is still kept.
pub(super) fn get(owner: u64, user_agent: &str) -> Option<Arc<Agent>> {
    RECENT.with_borrow(|recent| {
        recent
            .slots
            .iter()
            .find(|slot| slot.owner == owner && *slot.user_agent == *user_agent)
            .map(|slot| Arc::clone(&slot.agent))
    })
}

/// Keeps `agent` for the next `get` on this thread, in place of the oldest one kept.
pub(super) fn put(owner: u64, user_agent: &str, agent: &Arc<Agent>) {
    RECENT.with_borrow_mut(|recent| {
        let slot = Slot {
            owner,
            user_agent: Box::from(user_agent),
            agent: Arc::clone(agent),
        };
        if recent.slots.len() < SLOTS {
            recent.slots.push(slot);
        } else {
            let next = recent.next;
            recent.slots[next] = slot;
            recent.next = (next + 1) % SLOTS;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeviceType;

    fn agent(browser: &str) -> Arc<Agent> {
        Arc::new(Agent {
            browser: Some(browser.to_string()),
            os: None,
            device_type: DeviceType::Desktop,
            bot: false,
        })
    }

    #[test]
    fn an_agent_is_found_by_its_owner_and_exact_text_only() {
        let owner = new_owner();
        let chrome = agent("Chrome");
        put(owner, "Chrome/1", &chrome);
        assert!(Arc::ptr_eq(&get(owner, "Chrome/1").unwrap(), &chrome));
        assert!(get(owner, "Chrome/1 ").is_none());
        assert!(get(new_owner(), "Chrome/1").is_none());
    }

    #[test]
    fn the_oldest_agent_makes_room_for_a_new_one() {
        let owner = new_owner();
        for index in 0..=SLOTS {
            put(owner, &format!("Agent/{index}"), &agent("A"));
        }
        assert!(get(owner, "Agent/0").is_none(), "replaced");
        for index in 1..=SLOTS {
            assert!(get(owner, &format!("Agent/{index}")).is_some(), "{index}");
        }
    }
}

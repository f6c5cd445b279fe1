//! In-process quotas with GCRA from `governor`: the limiter when Redis is not
//! configured, and the fallback when it is down. A limiter is keyed by its scope and its
//! quota, so changing a quota starts a fresh budget.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter as Gcra};
use moka::sync::Cache;

use crate::limits::RateLimitStatus;

type ScopeLimiter = Gcra<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

const MAX_SCOPES: u64 = 100_000;
const IDLE_EVICTION: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed(RateLimitStatus),
    Limited {
        status: RateLimitStatus,
        retry_after: Duration,
    },
}

pub struct LocalRateLimiter {
    limiters: Cache<(String, u32), Arc<ScopeLimiter>>,
    clock: DefaultClock,
}

impl Default for LocalRateLimiter {
    fn default() -> LocalRateLimiter {
        LocalRateLimiter {
            limiters: Cache::builder()
                .max_capacity(MAX_SCOPES)
                .time_to_idle(IDLE_EVICTION)
                .build(),
            clock: DefaultClock::default(),
        }
    }
}

impl LocalRateLimiter {
    /// Takes `cost` units from `scope`'s per-minute budget, or says how long to wait.
    pub fn check(&self, scope: &str, per_minute: u32, cost: u32) -> RateDecision {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let limiter = self
            .limiters
            .get_with((scope.to_string(), per_minute.get()), || {
                Arc::new(
                    Gcra::direct(Quota::per_minute(per_minute))
                        .with_middleware::<StateInformationMiddleware>(),
                )
            });
        let per_unit = Duration::from_secs(60) / per_minute.get();
        let cost = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        let status = |remaining: u32| RateLimitStatus {
            limit: per_minute.get(),
            remaining,
            reset: per_unit * (per_minute.get() - remaining),
        };
        match limiter.check_n(cost) {
            Ok(Ok(snapshot)) => RateDecision::Allowed(status(snapshot.remaining_burst_capacity())),
            Ok(Err(not_until)) => RateDecision::Limited {
                status: status(0),
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
            // The request alone is larger than the whole budget: it can never pass.
            Err(_) => RateDecision::Limited {
                status: status(0),
                retry_after: Duration::from_secs(60),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_budget_then_limits_with_a_wait() {
        let limiter = LocalRateLimiter::default();
        let partner = "partner:a";
        let RateDecision::Allowed(status) = limiter.check(partner, 10, 9) else {
            panic!("first 9 must pass")
        };
        assert_eq!((status.limit, status.remaining), (10, 1));
        assert!(matches!(
            limiter.check(partner, 10, 1),
            RateDecision::Allowed(_)
        ));
        let RateDecision::Limited {
            retry_after,
            status,
        } = limiter.check(partner, 10, 1)
        else {
            panic!("the 11th unit must be limited")
        };
        assert_eq!(status.remaining, 0);
        assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(6));
    }

    #[test]
    fn partners_have_separate_budgets() {
        let limiter = LocalRateLimiter::default();
        assert!(matches!(
            limiter.check(&uuid::Uuid::now_v7().to_string(), 5, 5),
            RateDecision::Allowed(_)
        ));
        assert!(matches!(
            limiter.check(&uuid::Uuid::now_v7().to_string(), 5, 5),
            RateDecision::Allowed(_)
        ));
    }

    #[test]
    fn a_batch_larger_than_the_budget_is_limited() {
        let limiter = LocalRateLimiter::default();
        assert!(matches!(
            limiter.check("partner:b", 5, 6),
            RateDecision::Limited { .. }
        ));
    }
}

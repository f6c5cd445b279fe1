//! In-process quotas: the limiter when Redis is not configured, and the fallback when it
//! is down. The same GCRA as the shared Lua script (`gcra.lua`), over several budgets at
//! once under one lock: a request's cost is taken from every budget or from none, so a
//! request the partner's budget refuses is not charged to its key's. (`governor` checks
//! one limiter at a time and can't give a charge back, hence this small state machine.)
//! A budget is keyed by its scope and its quota, so changing a quota starts afresh.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::limits::RateLimitStatus;

const PERIOD: Duration = Duration::from_secs(60);
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
    /// Each budget's theoretical arrival time (GCRA's TAT), in nanoseconds since `epoch`.
    /// A cell updated in place: a cache insert per request cost more than the GCRA itself.
    arrivals: Cache<(String, u32), Arc<AtomicU64>>,
    /// Held while budgets are read and charged, so a charge is all or nothing.
    charging: Mutex<()>,
    epoch: Instant,
}

impl Default for LocalRateLimiter {
    fn default() -> LocalRateLimiter {
        LocalRateLimiter {
            arrivals: Cache::builder()
                .max_capacity(MAX_SCOPES)
                .time_to_idle(IDLE_EVICTION)
                .build(),
            charging: Mutex::new(()),
            epoch: Instant::now(),
        }
    }
}

impl LocalRateLimiter {
    /// Takes `cost` units from one per-minute budget, or says how long to wait.
    #[cfg(test)]
    pub fn check(&self, scope: &str, per_minute: u32, cost: u32) -> RateDecision {
        self.check_all(&[(scope, per_minute)], cost).0
    }

    /// Takes `cost` from every `(scope, per_minute)` budget, or from none: on refusal, the
    /// decision and index of the exhausted budget; on success, those of the tightest.
    pub fn check_all(&self, budgets: &[(&str, u32)], cost: u32) -> (RateDecision, usize) {
        let _charging = self
            .charging
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // One period past the epoch, so `arrival - PERIOD` never goes below zero.
        let now = self.epoch.elapsed() + PERIOD;
        let mut charged = Vec::with_capacity(budgets.len());
        let mut tightest: Option<(RateDecision, usize)> = None;
        for (index, &(scope, per_minute)) in budgets.iter().enumerate() {
            let limit = per_minute.max(1);
            let key = (scope.to_string(), limit);
            let interval = PERIOD / limit;
            let cell = self.arrivals.get_with(key, || Arc::new(AtomicU64::new(0)));
            let arrival = Duration::from_nanos(cell.load(Ordering::Relaxed)).max(now);
            let next_arrival = arrival + interval.saturating_mul(cost);
            let status = |remaining: u32, reset: Duration| RateLimitStatus {
                limit,
                remaining,
                reset,
            };
            let allowed_at = next_arrival.saturating_sub(PERIOD);
            if allowed_at > now || cost > limit {
                let retry_after = if cost > limit {
                    PERIOD
                } else {
                    allowed_at - now
                };
                let decision = RateDecision::Limited {
                    status: status(0, arrival - now),
                    retry_after,
                };
                return (decision, index);
            }
            let remaining = ((now - allowed_at).as_nanos() / interval.as_nanos().max(1)) as u32;
            let decision = RateDecision::Allowed(status(remaining.min(limit), next_arrival - now));
            let tighter = tightest.is_none_or(|(current, _)| match current {
                RateDecision::Allowed(current) => remaining < current.remaining,
                RateDecision::Limited { .. } => false,
            });
            if tighter {
                tightest = Some((decision, index));
            }
            charged.push((cell, next_arrival));
        }
        // Nanoseconds since the epoch fit a u64 for five centuries.
        for (cell, next_arrival) in charged {
            cell.store(next_arrival.as_nanos() as u64, Ordering::Relaxed);
        }
        tightest.expect("at least one budget")
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
    fn a_refusal_by_one_budget_charges_none() {
        let limiter = LocalRateLimiter::default();
        let budgets = [("key:k", 100), ("partner:p", 10)];
        let (decision, index) = limiter.check_all(&budgets, 8);
        assert!(matches!(decision, RateDecision::Allowed(_)));
        assert_eq!(index, 1, "the partner's budget is the tightest");
        let (refused, index) = limiter.check_all(&budgets, 5);
        assert!(matches!(refused, RateDecision::Limited { .. }));
        assert_eq!(index, 1);
        let RateDecision::Allowed(key) = limiter.check("key:k", 100, 1) else {
            panic!("the key still has room")
        };
        assert_eq!(
            key.remaining, 91,
            "only the accepted 8 (and this 1) were charged"
        );
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

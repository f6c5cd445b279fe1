//! Admission control: per-key and per-partner event rates, and the replay guard.
//! With Redis both are shared by every instance; without it (or while it is down) they
//! are kept in process.

mod local;
mod replay;

use std::sync::Arc;
use std::time::Duration;

use fred::types::scripts::Script;
use uuid::Uuid;

pub use local::{LocalRateLimiter, RateDecision};
pub use replay::{NonceClaim, ReplayGuard, ReplayRefusal};

use crate::redis::Redis;

const PERIOD: Duration = Duration::from_secs(60);

/// The state of a rate limit after a check (sent as `RateLimit-*` headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitStatus {
    pub limit: u32,
    pub remaining: u32,
    /// Until the budget is whole again.
    pub reset: Duration,
}

/// Whose budget a request is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    Key(Uuid),
    Partner(Uuid),
}

impl LimitScope {
    fn key(self) -> String {
        match self {
            LimitScope::Key(id) => format!("key:{id}"),
            LimitScope::Partner(id) => format!("partner:{id}"),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            LimitScope::Key(_) => "key",
            LimitScope::Partner(_) => "partner",
        }
    }
}

/// Per-minute quotas with GCRA: smooth (no burst at window edges, unlike fixed windows),
/// one small key per limiter, and one atomic script call per check.
pub struct RateLimits {
    local: LocalRateLimiter,
    redis: Option<Arc<Redis>>,
    script: Script,
}

impl RateLimits {
    pub fn new(redis: Option<Arc<Redis>>) -> RateLimits {
        RateLimits {
            local: LocalRateLimiter::default(),
            redis,
            script: Script::from_lua(include_str!("gcra.lua")),
        }
    }

    /// Charges `cost` events to every budget (all or none); shared through Redis in one
    /// round trip when it answers in time, else in process. On refusal, names the
    /// exhausted budget; on success, reports the tightest one.
    pub async fn check(&self, budgets: &[Budget], cost: u32) -> (RateDecision, Budget) {
        debug_assert!(!budgets.is_empty());
        if let Some(redis) = &self.redis
            && let Some(outcome) = self.check_shared(redis, budgets, cost).await
        {
            return outcome;
        }
        let keys: Vec<String> = budgets.iter().map(Budget::key).collect();
        let local: Vec<(&str, u32)> = keys
            .iter()
            .zip(budgets)
            .map(|(key, budget)| (key.as_str(), budget.per_minute))
            .collect();
        let (decision, index) = self.local.check_all(&local, cost);
        (decision, budgets[index])
    }

    async fn check_shared(
        &self,
        redis: &Redis,
        budgets: &[Budget],
        cost: u32,
    ) -> Option<(RateDecision, Budget)> {
        let keys: Vec<String> = budgets
            .iter()
            .map(|budget| redis.key(&format!("rate:{}", budget.key())))
            .collect();
        let mut arguments = vec![PERIOD.as_micros() as i64, i64::from(cost)];
        arguments.extend(budgets.iter().map(|budget| i64::from(budget.per_minute)));
        let call =
            self.script
                .evalsha_with_reload::<Vec<i64>, _, _>(redis.client(), keys, arguments);
        let reply = redis.call("rate_limit", call).await?;
        let [allowed, index, limit, remaining, retry_after_us, reset_us] = reply[..] else {
            return None;
        };
        let budget = *budgets.get(usize::try_from(index - 1).ok()?)?;
        let status = RateLimitStatus {
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            reset: micros(reset_us),
        };
        let decision = if allowed == 1 {
            RateDecision::Allowed(status)
        } else {
            RateDecision::Limited {
                status,
                retry_after: micros(retry_after_us),
            }
        };
        Some((decision, budget))
    }
}

/// One budget to charge: whose, and how many events per minute it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub scope: LimitScope,
    pub per_minute: u32,
}

impl Budget {
    /// The quota is part of the key, so changing it starts a fresh budget.
    fn key(&self) -> String {
        format!("{}:{}", self.scope.key(), self.per_minute.max(1))
    }
}

fn micros(value: i64) -> Duration {
    Duration::from_micros(u64::try_from(value).unwrap_or(0))
}

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
pub use replay::{ReplayGuard, ReplayRefusal};

use crate::error::RateLimitStatus;
use crate::redis::Redis;

const PERIOD: Duration = Duration::from_secs(60);

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

    /// Charges `cost` events to `scope`; shared through Redis when it answers in time.
    pub async fn check(&self, scope: LimitScope, per_minute: u32, cost: u32) -> RateDecision {
        let per_minute = per_minute.max(1);
        let key = format!("{}:{per_minute}", scope.key());
        if let Some(redis) = &self.redis {
            let redis_key = redis.key(&format!("rate:{key}"));
            let arguments = vec![
                PERIOD.as_micros() as i64,
                i64::from(per_minute),
                i64::from(cost),
            ];
            let call = self.script.evalsha_with_reload::<Vec<i64>, _, _>(
                redis.client(),
                redis_key,
                arguments,
            );
            if let Some(reply) = redis.call("rate_limit", call).await
                && let [allowed, remaining, retry_after_us, reset_us] = reply[..]
            {
                let status = RateLimitStatus {
                    limit: per_minute,
                    remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
                    reset: micros(reset_us),
                };
                return if allowed == 1 {
                    RateDecision::Allowed(status)
                } else {
                    RateDecision::Limited {
                        status,
                        retry_after: micros(retry_after_us),
                    }
                };
            }
        }
        self.local.check(&key, per_minute, cost)
    }
}

fn micros(value: i64) -> Duration {
    Duration::from_micros(u64::try_from(value).unwrap_or(0))
}

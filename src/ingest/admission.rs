//! Admission control for a request's events, before they are validated: the replay guard
//! (timestamp window and one-time nonce) and the per-minute budgets of the key and its
//! partner, charged together. Every ingest format admits through here.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::auth::KeyHolder;
use crate::config::LimitsConfig;
use crate::error::{ErrorKind, ServiceError};
use crate::limits::{
    Budget, LimitScope, NonceClaim, RateDecision, RateLimitStatus, RateLimits, ReplayGuard,
    ReplayRefusal,
};
use crate::telemetry::Metrics;

/// A request's replay-guard headers, as sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayHeaders<'a> {
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
}

/// A budget that had no room for the request's events.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the {owner}'s limit of {per_minute} events per minute is exhausted")]
pub struct RateLimited {
    owner: &'static str,
    per_minute: u32,
    pub status: RateLimitStatus,
    retry_after: Duration,
}

impl ServiceError for RateLimited {
    fn kind(&self) -> ErrorKind {
        ErrorKind::RateLimited
    }

    fn retry_after(&self) -> Option<Duration> {
        Some(self.retry_after)
    }
}

pub struct Admission {
    rate_limits: RateLimits,
    replay_guard: ReplayGuard,
    key_rate_limit_per_minute: u32,
    default_partner_rate_limit_per_minute: u32,
    metrics: std::sync::Arc<Metrics>,
}

impl Admission {
    pub fn new(
        rate_limits: RateLimits,
        replay_guard: ReplayGuard,
        limits: &LimitsConfig,
        metrics: std::sync::Arc<Metrics>,
    ) -> Admission {
        Admission {
            rate_limits,
            replay_guard,
            key_rate_limit_per_minute: limits.key_rate_limit_per_minute,
            default_partner_rate_limit_per_minute: limits.default_rate_limit_per_minute,
            metrics,
        }
    }

    pub async fn check_replay(
        &self,
        sender: &KeyHolder,
        headers: ReplayHeaders<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<NonceClaim>, ReplayRefusal> {
        self.replay_guard
            .check(sender.partner.id, headers.timestamp, headers.nonce, now)
            .await
    }

    /// A nonce is spent only by a request that was accepted: give back a refused one's.
    pub async fn release_nonce(&self, claim: NonceClaim) {
        self.replay_guard.release(claim).await;
    }

    /// Charges `events` to the key's and the partner's per-minute budgets, together;
    /// on success, the state of the tightest budget.
    pub async fn charge(
        &self,
        sender: &KeyHolder,
        events: usize,
    ) -> Result<RateLimitStatus, RateLimited> {
        let budgets = [
            Budget {
                scope: LimitScope::Key(sender.key.id),
                per_minute: self.key_rate_limit_per_minute,
            },
            Budget {
                scope: LimitScope::Partner(sender.partner.id),
                per_minute: sender
                    .partner
                    .rate_limit_per_minute
                    .unwrap_or(self.default_partner_rate_limit_per_minute),
            },
        ];
        let cost = u32::try_from(events).unwrap_or(u32::MAX);
        match self.rate_limits.check(&budgets, cost).await {
            (RateDecision::Allowed(status), _) => Ok(status),
            (
                RateDecision::Limited {
                    status,
                    retry_after,
                },
                budget,
            ) => {
                self.metrics
                    .rate_limited
                    .with_label_values(&[budget.scope.label()])
                    .inc();
                Err(RateLimited {
                    owner: match budget.scope {
                        LimitScope::Key(_) => "API key",
                        LimitScope::Partner(_) => "partner",
                    },
                    per_minute: budget.per_minute,
                    status,
                    retry_after,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::model::Partner;
    use crate::model::test_support::{sample_ingest_key, sample_partner};

    fn admission(key_per_minute: u32, partner_per_minute: u32) -> (Admission, Arc<Metrics>) {
        let mut limits = Config::defaults().limits;
        limits.key_rate_limit_per_minute = key_per_minute;
        limits.default_rate_limit_per_minute = partner_per_minute;
        let metrics = Arc::new(Metrics::new());
        let guard = ReplayGuard::new(limits.replay_window, 100, None);
        let admission = Admission::new(RateLimits::new(None), guard, &limits, Arc::clone(&metrics));
        (admission, metrics)
    }

    fn sender(partner: Partner) -> KeyHolder {
        KeyHolder {
            key: Arc::new(sample_ingest_key(partner.id, None)),
            partner: Arc::new(partner),
        }
    }

    #[tokio::test]
    async fn a_charge_past_the_keys_budget_is_refused_and_names_the_key() {
        let (admission, metrics) = admission(10, 1_000);
        let sender = sender(sample_partner());
        let status = admission.charge(&sender, 4).await.unwrap();
        assert_eq!((status.limit, status.remaining), (10, 6));
        let refused = admission.charge(&sender, 7).await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::RateLimited);
        assert!(
            refused.to_string().starts_with("the API key's limit of 10"),
            "{refused}"
        );
        assert!(refused.retry_after().is_some());
        assert_eq!(metrics.rate_limited.with_label_values(&["key"]).get(), 1);
        assert!(
            admission.charge(&sender, 6).await.is_ok(),
            "a refusal costs nothing"
        );
    }

    #[tokio::test]
    async fn a_partners_own_limit_overrides_the_default() {
        let (admission, _) = admission(1_000, 1_000);
        let mut partner = sample_partner();
        partner.rate_limit_per_minute = Some(5);
        let sender = sender(partner);
        let refused = admission.charge(&sender, 6).await.unwrap_err();
        assert!(
            refused.to_string().starts_with("the partner's limit of 5"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn a_nonce_is_spent_once_unless_given_back() {
        let (admission, _) = admission(1_000, 1_000);
        let sender = sender(sample_partner());
        let now = Utc::now();
        let timestamp = now.timestamp().to_string();
        let headers = ReplayHeaders {
            timestamp: Some(&timestamp),
            nonce: Some("n-1"),
        };
        let claim = admission.check_replay(&sender, headers, now).await.unwrap();
        let replayed = admission.check_replay(&sender, headers, now).await;
        assert!(
            matches!(replayed, Err(ReplayRefusal::Replayed)),
            "{replayed:?}"
        );
        admission
            .release_nonce(claim.expect("a nonce was claimed"))
            .await;
        assert!(admission.check_replay(&sender, headers, now).await.is_ok());
    }
}

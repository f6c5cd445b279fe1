//! The replay guard: a request may carry `X-Request-Timestamp` (RFC 3339 or unix
//! seconds) and `X-Request-Nonce`. The timestamp must be within the window of now, and
//! a nonce may be used once per partner within the window (kept with `SET NX EX` in
//! Redis under a key naming the partner, in process without it).
//!
//! In process, each partner has a nonce set of its own with its own bound: a partner
//! that sends more nonces than the bound within the window can only push out its own,
//! never another partner's (one shared set let any partner evict everyone's).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::sync::Cache;
use uuid::Uuid;

use crate::error::{ErrorKind, FieldError, ServiceError};
use crate::redis::Redis;
use fred::prelude::{Expiration, KeysInterface, SetOptions};

const MAX_NONCE_LENGTH: usize = 128;
/// Partners whose nonce sets are kept at once; a set idle for a whole window is empty
/// anyway, so only partners active within the window count.
const MAX_LOCAL_PARTNERS: u64 = 100_000;

type NonceSet = Cache<String, ()>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayRefusal {
    #[error("{header}: {message}")]
    Malformed {
        header: &'static str,
        message: String,
    },
    #[error("X-Request-Timestamp is more than {0} away from the server's clock")]
    Stale(String),
    #[error("X-Request-Nonce was already used")]
    Replayed,
}

impl ServiceError for ReplayRefusal {
    fn kind(&self) -> ErrorKind {
        match self {
            ReplayRefusal::Replayed => ErrorKind::Conflict,
            ReplayRefusal::Malformed { .. } | ReplayRefusal::Stale(_) => ErrorKind::InvalidRequest,
        }
    }

    fn field_errors(&self) -> Vec<FieldError> {
        match self {
            ReplayRefusal::Malformed { header, message } => vec![FieldError::new(*header, message)],
            ReplayRefusal::Stale(_) => vec![FieldError::new(TIMESTAMP, self.to_string())],
            ReplayRefusal::Replayed => Vec::new(),
        }
    }
}

/// A nonce taken by a request; give it back with `ReplayGuard::release` if the request
/// is refused after all, so the corrected retry is not taken for a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceClaim {
    partner_id: Uuid,
    nonce: String,
    /// Taken in Redis (shared), or in process because Redis did not answer: it is given
    /// back only where it was taken, never deleting another instance's claim.
    in_redis: bool,
}

pub struct ReplayGuard {
    window: Duration,
    /// Partner → the nonces it spent in process (without Redis, or while it is down).
    local_nonces: Cache<Uuid, Arc<NonceSet>>,
    max_nonces_per_partner: u64,
    redis: Option<Arc<Redis>>,
}

impl ReplayGuard {
    pub fn new(
        window: Duration,
        max_nonces_per_partner: u64,
        redis: Option<Arc<Redis>>,
    ) -> ReplayGuard {
        ReplayGuard {
            window,
            local_nonces: Cache::builder()
                .max_capacity(MAX_LOCAL_PARTNERS)
                .time_to_idle(window * 2)
                .build(),
            max_nonces_per_partner,
            redis,
        }
    }

    pub async fn check(
        &self,
        partner_id: Uuid,
        timestamp: Option<&str>,
        nonce: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<NonceClaim>, ReplayRefusal> {
        let Some(timestamp) = timestamp else {
            return match nonce {
                Some(_) => Err(malformed(NONCE, "needs an X-Request-Timestamp")),
                None => Ok(None),
            };
        };
        let sent_at = parse_timestamp(timestamp)?;
        let skew = (now - sent_at).abs().to_std().unwrap_or(Duration::MAX);
        if skew > self.window {
            return Err(ReplayRefusal::Stale(
                humantime::format_duration(self.window).to_string(),
            ));
        }
        let Some(nonce) = nonce else { return Ok(None) };
        if nonce.is_empty()
            || nonce.len() > MAX_NONCE_LENGTH
            || !nonce.bytes().all(|byte| byte.is_ascii_graphic())
        {
            return Err(malformed(
                NONCE,
                &format!("must be 1 to {MAX_NONCE_LENGTH} visible ASCII characters"),
            ));
        }
        match self.first_use(partner_id, nonce).await {
            (true, in_redis) => Ok(Some(NonceClaim {
                partner_id,
                nonce: nonce.to_string(),
                in_redis,
            })),
            (false, _) => Err(ReplayRefusal::Replayed),
        }
    }

    /// Makes a claimed nonce usable again (its request was refused).
    pub async fn release(&self, claim: NonceClaim) {
        match &self.redis {
            Some(redis) if claim.in_redis => {
                let key = redis_key(claim.partner_id, &claim.nonce);
                let delete = redis.client().del::<i64, _>(redis.key(&key));
                redis.call("replay_guard", delete).await;
            }
            _ => {
                if let Some(spent) = self.local_nonces.get(&claim.partner_id) {
                    spent.invalidate(&claim.nonce);
                }
            }
        }
    }

    /// Whether the partner's `nonce` was not seen before (taking it), and whether Redis
    /// answered.
    async fn first_use(&self, partner_id: Uuid, nonce: &str) -> (bool, bool) {
        if let Some(redis) = &self.redis {
            let ttl_seconds = i64::try_from((self.window * 2).as_secs()).unwrap_or(i64::MAX);
            let set = redis.client().set::<Option<String>, _, _>(
                redis.key(&redis_key(partner_id, nonce)),
                1,
                Some(Expiration::EX(ttl_seconds)),
                Some(SetOptions::NX),
                false,
            );
            if let Some(reply) = redis.call("replay_guard", set).await {
                return (reply.is_some(), true);
            }
        }
        let fresh = self
            .partner_nonces(partner_id)
            .entry(nonce.to_string())
            .or_insert(())
            .is_fresh();
        (fresh, false)
    }

    fn partner_nonces(&self, partner_id: Uuid) -> Arc<NonceSet> {
        self.local_nonces.get_with(partner_id, || {
            // A nonce must outlive both sides of the window to be recognised.
            Arc::new(
                Cache::builder()
                    .max_capacity(self.max_nonces_per_partner)
                    .time_to_live(self.window * 2)
                    .build(),
            )
        })
    }
}

/// The partner is part of the key, so partners' nonces never meet.
fn redis_key(partner_id: Uuid, nonce: &str) -> String {
    format!("nonce:{partner_id}:{nonce}")
}

const TIMESTAMP: &str = "X-Request-Timestamp";
const NONCE: &str = "X-Request-Nonce";

fn malformed(header: &'static str, message: &str) -> ReplayRefusal {
    ReplayRefusal::Malformed {
        header,
        message: message.to_string(),
    }
}

fn parse_timestamp(raw: &str) -> Result<DateTime<Utc>, ReplayRefusal> {
    if let Ok(seconds) = raw.trim().parse::<i64>() {
        return DateTime::from_timestamp(seconds, 0)
            .ok_or_else(|| malformed(TIMESTAMP, "is out of range"));
    }
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| malformed(TIMESTAMP, "must be RFC 3339 or unix seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> ReplayGuard {
        ReplayGuard::new(Duration::from_secs(300), 1_000, None)
    }

    #[tokio::test]
    async fn requests_without_headers_pass() {
        assert_eq!(
            guard().check(Uuid::nil(), None, None, Utc::now()).await,
            Ok(None)
        );
    }

    #[tokio::test]
    async fn timestamps_outside_the_window_are_stale() {
        let now = Utc::now();
        let old = (now - chrono::Duration::minutes(6)).to_rfc3339();
        assert!(matches!(
            guard().check(Uuid::nil(), Some(&old), None, now).await,
            Err(ReplayRefusal::Stale(_))
        ));
        let seconds = now.timestamp().to_string();
        assert_eq!(
            guard().check(Uuid::nil(), Some(&seconds), None, now).await,
            Ok(None)
        );
    }

    #[tokio::test]
    async fn a_nonce_is_accepted_once_per_partner() {
        let guard = guard();
        let now = Utc::now();
        let stamp = now.to_rfc3339();
        let claim = guard
            .check(Uuid::nil(), Some(&stamp), Some("n-1"), now)
            .await;
        assert!(matches!(claim, Ok(Some(_))));
        assert_eq!(
            guard
                .check(Uuid::nil(), Some(&stamp), Some("n-1"), now)
                .await,
            Err(ReplayRefusal::Replayed)
        );
        assert!(matches!(
            guard
                .check(Uuid::max(), Some(&stamp), Some("n-1"), now)
                .await,
            Ok(Some(_))
        ));
        guard.release(claim.unwrap().unwrap()).await;
        assert!(matches!(
            guard
                .check(Uuid::nil(), Some(&stamp), Some("n-1"), now)
                .await,
            Ok(Some(_))
        ));
    }

    #[tokio::test]
    async fn malformed_headers_are_refused() {
        let now = Utc::now();
        assert!(matches!(
            guard().check(Uuid::nil(), Some("noon"), None, now).await,
            Err(ReplayRefusal::Malformed { .. })
        ));
        assert!(matches!(
            guard().check(Uuid::nil(), None, Some("n"), now).await,
            Err(ReplayRefusal::Malformed { .. })
        ));
    }
}

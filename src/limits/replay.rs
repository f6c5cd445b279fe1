//! The replay guard: a request may carry `X-Request-Timestamp` (RFC 3339 or unix
//! seconds) and `X-Request-Nonce`. The timestamp must be within the window of now, and
//! a nonce may be used once per partner within the window (kept with `SET NX EX` in
//! Redis, in process without it).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::sync::Cache;
use uuid::Uuid;

use crate::error::{ErrorKind, FieldError, ServiceError};
use crate::redis::Redis;
use fred::prelude::{Expiration, KeysInterface, SetOptions};

const MAX_NONCE_LENGTH: usize = 128;
const MAX_LOCAL_NONCES: u64 = 1_000_000;

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
    key: String,
    /// Taken in Redis (shared), or in process because Redis did not answer: it is given
    /// back only where it was taken, never deleting another instance's claim.
    in_redis: bool,
}

pub struct ReplayGuard {
    window: Duration,
    local_nonces: Cache<String, ()>,
    redis: Option<Arc<Redis>>,
}

impl ReplayGuard {
    pub fn new(window: Duration, redis: Option<Arc<Redis>>) -> ReplayGuard {
        ReplayGuard {
            window,
            // A nonce must outlive both sides of the window to be recognised.
            local_nonces: Cache::builder()
                .max_capacity(MAX_LOCAL_NONCES)
                .time_to_live(window * 2)
                .build(),
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
        let key = format!("nonce:{partner_id}:{nonce}");
        match self.first_use(&key).await {
            (true, in_redis) => Ok(Some(NonceClaim { key, in_redis })),
            (false, _) => Err(ReplayRefusal::Replayed),
        }
    }

    /// Makes a claimed nonce usable again (its request was refused).
    pub async fn release(&self, claim: NonceClaim) {
        match &self.redis {
            Some(redis) if claim.in_redis => {
                let delete = redis.client().del::<i64, _>(redis.key(&claim.key));
                redis.call("replay_guard", delete).await;
            }
            _ => self.local_nonces.invalidate(&claim.key),
        }
    }

    /// Whether `key` was not seen before (taking it), and whether Redis answered.
    async fn first_use(&self, key: &str) -> (bool, bool) {
        if let Some(redis) = &self.redis {
            let ttl_seconds = i64::try_from((self.window * 2).as_secs()).unwrap_or(i64::MAX);
            let set = redis.client().set::<Option<String>, _, _>(
                redis.key(key),
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
            .local_nonces
            .entry(key.to_string())
            .or_insert(())
            .is_fresh();
        (fresh, false)
    }
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
        ReplayGuard::new(Duration::from_secs(300), None)
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

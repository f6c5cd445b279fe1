//! Verifying presented API keys without paying PBKDF2 on every request: a verdict is
//! computed once per distinct key (single-flight, on the blocking pool) and cached under
//! the SHA-256 of the key, never the key itself. Wrong keys are cached too, and a key id
//! that keeps failing is refused before any hashing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use moka::Expiry;
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::auth::{AuthError, PresentedKey};
use crate::cache::ReadThrough;
use crate::config::AuthConfig;
use crate::model::ApiKey;
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;

const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const MAX_CACHED_VERDICTS: u64 = 100_000;

#[derive(Clone)]
enum Verdict {
    Valid(Arc<ApiKey>),
    Invalid,
}

struct VerdictExpiry {
    valid_for: Duration,
    invalid_for: Duration,
}

impl Expiry<[u8; 32], Verdict> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        verdict: &Verdict,
        _created_at: Instant,
    ) -> Option<Duration> {
        match verdict {
            Verdict::Valid(_) => Some(self.valid_for),
            Verdict::Invalid => Some(self.invalid_for),
        }
    }
}

pub struct KeyVerifier {
    store: Arc<dyn Store>,
    verdicts: ReadThrough<[u8; 32], Verdict>,
    failures_by_key_id: Cache<String, Arc<AtomicU32>>,
    max_failures: u32,
}

impl KeyVerifier {
    pub fn new(store: Arc<dyn Store>, config: &AuthConfig, metrics: Arc<Metrics>) -> KeyVerifier {
        let verdicts = Cache::builder()
            .max_capacity(MAX_CACHED_VERDICTS)
            .expire_after(VerdictExpiry {
                valid_for: config.key_cache_ttl,
                invalid_for: config.negative_cache_ttl,
            })
            .build();
        let failures_by_key_id = Cache::builder()
            .max_capacity(MAX_CACHED_VERDICTS)
            .time_to_live(FAILURE_WINDOW)
            .build();
        KeyVerifier {
            store,
            verdicts: ReadThrough::wrap("api_key", verdicts, metrics),
            failures_by_key_id,
            max_failures: config.max_failed_attempts_per_minute,
        }
    }

    /// The stored key behind `presented`, if it is genuine and usable now.
    pub async fn verify(&self, presented: &str) -> Result<Arc<ApiKey>, AuthError> {
        let Some(parsed) = PresentedKey::parse(presented) else {
            return Err(AuthError::Rejected("the API key is not valid"));
        };
        let fingerprint: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let verdict = self
            .verdicts
            .get_or_load(
                fingerprint,
                self.verify_uncached(parsed.key_id.to_string(), parsed.secret.to_string()),
            )
            .await
            .map_err(|shared| shared.as_ref().clone())?;
        match verdict {
            Verdict::Valid(key) => match key.unusable_reason(Utc::now()) {
                Some(reason) => Err(AuthError::Rejected(reason)),
                None => Ok(key),
            },
            Verdict::Invalid => Err(AuthError::Rejected("the API key is not valid")),
        }
    }

    /// Drops every cached verdict, so changed keys, partners or subsystems count at once.
    pub fn forget_all(&self) {
        self.verdicts.forget_all();
    }

    async fn verify_uncached(&self, key_id: String, secret: String) -> Result<Verdict, AuthError> {
        let stored = self
            .store
            .api_key_by_key_id(&key_id)
            .await
            .map_err(|error| AuthError::Unavailable(Arc::new(error)))?;
        let Some(stored) = stored else {
            return Ok(Verdict::Invalid);
        };
        let failures = self
            .failures_by_key_id
            .get_with(key_id, async { Arc::new(AtomicU32::new(0)) })
            .await;
        if failures.load(Ordering::Relaxed) >= self.max_failures {
            return Err(AuthError::TooManyAttempts {
                retry_after: FAILURE_WINDOW,
            });
        }
        let hash = stored.secret_hash.clone();
        let genuine = tokio::task::spawn_blocking(move || hash.matches(&secret))
            .await
            .map_err(|error| {
                AuthError::Unavailable(Arc::new(StoreError::Unavailable(error.to_string())))
            })?;
        if genuine {
            Ok(Verdict::Valid(Arc::new(stored)))
        } else {
            failures.fetch_add(1, Ordering::Relaxed);
            Ok(Verdict::Invalid)
        }
    }
}

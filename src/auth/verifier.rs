//! Verifying presented API keys without paying PBKDF2 on every request: a verdict is
//! computed once per distinct key (single-flight, on the blocking pool) and cached under
//! the SHA-256 of the key, never the key itself. Wrong keys are cached too.
//!
//! A genuine key is never refused because others failed. Its secret passes the key's
//! pre-check (`SecretHash::pre_check`, one SHA-256) and goes on to PBKDF2, charged only
//! to an instance-wide budget of its own, whatever the client address has done. A wrong
//! secret fails the pre-check (all but 1 in 2^32) and costs no PBKDF2 at all. Failures
//! are still counted per client address (key ids are public, so nothing is counted per
//! key id): past the budget, that address's wrong keys get `429` instead of `401`, which
//! slows guessing without touching anyone's genuine key.
//!
//! Keys made before pre-checks existed have no pre-check: for them every attempt is
//! PBKDF2, charged before the work to the client's minute and to the instance's second
//! (exact under any concurrency), and such a key not yet proven can still be refused
//! while its address is over budget. A key proven genuine is remembered for hours, by
//! the stored hash it matched, so it skips both budgets and PBKDF2; its stored record is
//! still read again after `key_cache_ttl` or `forget_all`, so revocation and expiry count
//! at once. An unknown key id is checked against a stand-in that costs the same as a
//! wrong secret, so timing does not tell them apart.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use governor::clock::{Clock, DefaultClock};
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use moka::Expiry;
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::auth::{AuthError, PreCheck, PresentedKey};
use crate::cache::ReadThrough;
use crate::config::AuthConfig;
use crate::model::{ApiKey, SecretHash};
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;

const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const MAX_CACHED_VERDICTS: u64 = 100_000;
const MAX_PROVEN_KEYS: u64 = 100_000;
const MAX_TRACKED_CLIENTS: u64 = 100_000;
/// A key proven genuine skips hashing this long (or `key_cache_ttl`, if longer).
const PROVEN_AT_LEAST: Duration = Duration::from_secs(12 * 60 * 60);

type Fingerprint = [u8; 32];
type GlobalBudget = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

#[derive(Clone)]
enum Verdict {
    Valid(Arc<ApiKey>),
    Invalid,
}

struct VerdictExpiry {
    valid_for: Duration,
    invalid_for: Duration,
}

impl Expiry<Fingerprint, Verdict> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _key: &Fingerprint,
        verdict: &Verdict,
        _created_at: Instant,
    ) -> Option<Duration> {
        match verdict {
            Verdict::Valid(_) => Some(self.valid_for),
            Verdict::Invalid => Some(self.invalid_for),
        }
    }
}

/// One client's attempts in the current minute: in flight (not yet proven genuine) and
/// failed. Charged before hashing, so concurrent attempts can never exceed the budget.
struct AttemptWindow {
    opened: Instant,
    charged: AtomicU32,
}

impl AttemptWindow {
    fn try_charge(&self, budget: u32) -> bool {
        self.charged
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |charged| {
                (charged < budget).then_some(charged + 1)
            })
            .is_ok()
    }

    fn refund(&self) {
        self.charged.fetch_sub(1, Ordering::AcqRel);
    }

    fn retry_after(&self) -> Duration {
        FAILURE_WINDOW
            .saturating_sub(self.opened.elapsed())
            .max(Duration::from_secs(1))
    }
}

pub struct KeyVerifier {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    verdicts: ReadThrough<Fingerprint, Verdict>,
    /// Fingerprint of a key proven genuine → the stored hash it matched. Not dropped by
    /// `forget_all`: it proves the secret, never that the key is still usable.
    proven: moka::sync::Cache<Fingerprint, Arc<str>>,
    attempts_by_client: moka::sync::Cache<Option<IpAddr>, Arc<AttemptWindow>>,
    max_failures_per_client: u32,
    /// PBKDF2 runs for keys without a pre-check (and their wrong secrets).
    hashes: GlobalBudget,
    /// PBKDF2 runs for secrets that passed a pre-check: genuine keys, and 1 in 2^32 wrong
    /// ones, so others' failures can't spend it.
    pre_checked_hashes: GlobalBudget,
    clock: DefaultClock,
    /// What an unknown key id's secret is checked against: same cost, never a match.
    unknown_key_hash: SecretHash,
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
        let per_second = NonZeroU32::new(config.max_hashes_per_second).unwrap_or(NonZeroU32::MIN);
        KeyVerifier {
            store,
            verdicts: ReadThrough::wrap("api_key", verdicts, Arc::clone(&metrics)),
            metrics,
            proven: moka::sync::Cache::builder()
                .max_capacity(MAX_PROVEN_KEYS)
                .time_to_live(config.key_cache_ttl.max(PROVEN_AT_LEAST))
                .build(),
            attempts_by_client: moka::sync::Cache::builder()
                .max_capacity(MAX_TRACKED_CLIENTS)
                .time_to_live(FAILURE_WINDOW)
                .build(),
            max_failures_per_client: config.max_failed_attempts_per_minute,
            hashes: RateLimiter::direct(Quota::per_second(per_second)),
            pre_checked_hashes: RateLimiter::direct(Quota::per_second(per_second)),
            clock: DefaultClock::default(),
            unknown_key_hash: SecretHash::never_matching(config.pbkdf2_iterations),
        }
    }

    /// The stored key behind `presented`, if it is genuine and usable now. Wrong keys
    /// are charged to `client`.
    pub async fn verify(
        &self,
        presented: &str,
        client: Option<IpAddr>,
    ) -> Result<Arc<ApiKey>, AuthError> {
        let Some(parsed) = PresentedKey::parse(presented) else {
            return Err(AuthError::Rejected("the API key is not valid"));
        };
        let fingerprint: Fingerprint = Sha256::digest(presented.as_bytes()).into();
        let verdict = self
            .verdicts
            .get_or_load(fingerprint, || {
                self.verify_uncached(
                    fingerprint,
                    parsed.key_id.to_string(),
                    parsed.secret.to_string(),
                    client,
                )
            })
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

    async fn verify_uncached(
        &self,
        fingerprint: Fingerprint,
        key_id: String,
        secret: String,
        client: Option<IpAddr>,
    ) -> Result<Verdict, AuthError> {
        let stored = self
            .store
            .api_key_by_key_id(&key_id)
            .await
            .map_err(|error| AuthError::Unavailable(Arc::new(error)))?;
        if let Some(stored) = &stored
            && self.is_proven(&fingerprint, &stored.secret_hash)
        {
            return Ok(Verdict::Valid(Arc::new(stored.clone())));
        }
        let against = stored.as_ref().map_or_else(
            || self.unknown_key_hash.clone(),
            |stored| stored.secret_hash.clone(),
        );
        let matched = match against.pre_check(&secret) {
            PreCheck::Differs => false,
            PreCheck::Passes => {
                charge(&self.pre_checked_hashes, &self.clock)?;
                self.hash(against, secret).await?
            }
            PreCheck::Absent => {
                return self
                    .verify_without_pre_check(stored, fingerprint, against, secret, client)
                    .await;
            }
        };
        match stored {
            Some(stored) if matched => Ok(self.prove(fingerprint, stored)),
            _ => self.failed(client),
        }
    }

    /// Keys made before pre-checks: every attempt is PBKDF2, charged to the client first
    /// (refunded if the key proves genuine) and to the instance.
    async fn verify_without_pre_check(
        &self,
        stored: Option<ApiKey>,
        fingerprint: Fingerprint,
        against: SecretHash,
        secret: String,
        client: Option<IpAddr>,
    ) -> Result<Verdict, AuthError> {
        let window = self.charge_client(client)?;
        if let Err(refused) = charge(&self.hashes, &self.clock) {
            window.refund();
            return Err(refused);
        }
        let matched = match self.hash(against, secret).await {
            Ok(matched) => matched,
            Err(error) => {
                window.refund();
                return Err(error);
            }
        };
        match stored {
            Some(stored) if matched => {
                window.refund();
                Ok(self.prove(fingerprint, stored))
            }
            _ => Ok(Verdict::Invalid),
        }
    }

    /// One PBKDF2 run on the blocking pool.
    async fn hash(&self, against: SecretHash, secret: String) -> Result<bool, AuthError> {
        self.metrics.auth_hashes.inc();
        tokio::task::spawn_blocking(move || against.matches(&secret))
            .await
            .map_err(|error| {
                let error = StoreError::Unavailable(error.to_string());
                AuthError::Unavailable(Arc::new(error))
            })
    }

    fn prove(&self, fingerprint: Fingerprint, stored: ApiKey) -> Verdict {
        let hash: Arc<str> = Arc::from(stored.secret_hash.hash.as_str());
        self.proven.insert(fingerprint, hash);
        Verdict::Valid(Arc::new(stored))
    }

    /// A wrong key, its (cheap) work already done, counted against its client: `401`
    /// within the client's budget, `429` past it, which slows the guessing.
    fn failed(&self, client: Option<IpAddr>) -> Result<Verdict, AuthError> {
        self.charge_client(client).map(|_| Verdict::Invalid)
    }

    fn is_proven(&self, fingerprint: &Fingerprint, stored: &SecretHash) -> bool {
        self.proven
            .get(fingerprint)
            .is_some_and(|hash| *hash == *stored.hash)
    }

    /// One attempt charged to `client`'s minute.
    fn charge_client(&self, client: Option<IpAddr>) -> Result<Arc<AttemptWindow>, AuthError> {
        let window = self.attempts_by_client.get_with(client_bucket(client), || {
            Arc::new(AttemptWindow {
                opened: Instant::now(),
                charged: AtomicU32::new(0),
            })
        });
        if !window.try_charge(self.max_failures_per_client) {
            return Err(AuthError::TooManyAttempts {
                retry_after: window.retry_after(),
            });
        }
        Ok(window)
    }
}

/// One PBKDF2 run charged to an instance-wide budget.
fn charge(budget: &GlobalBudget, clock: &DefaultClock) -> Result<(), AuthError> {
    budget
        .check()
        .map_err(|not_until| AuthError::TooManyAttempts {
            retry_after: not_until.wait_time_from(clock.now()),
        })
}

/// Whose budget an address spends: IPv4 addresses one by one (IPv4-mapped IPv6 too),
/// IPv6 by /64, the smallest block a host is usually given.
fn client_bucket(client: Option<IpAddr>) -> Option<IpAddr> {
    match client? {
        IpAddr::V4(v4) => Some(IpAddr::V4(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(IpAddr::V4(v4)),
            None => {
                let network = u128::from(v6) & !(u128::from(u64::MAX));
                Some(IpAddr::V6(Ipv6Addr::from(network)))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::generate;
    use crate::config::Config;
    use crate::model::Scope;
    use crate::store::embedded::EmbeddedStore;
    use uuid::Uuid;

    const ITERATIONS: u32 = 10;

    struct Fixture {
        verifier: KeyVerifier,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        clear: String,
        _dir: tempfile::TempDir,
    }

    async fn fixture(change: impl FnOnce(&mut AuthConfig)) -> Fixture {
        let dir = tempfile::TempDir::new().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let mut config = Config::defaults().auth;
        config.pbkdf2_iterations = ITERATIONS;
        config.negative_cache_ttl = Duration::ZERO;
        change(&mut config);
        let generated = generate(ITERATIONS);
        store.insert_api_key(&api_key(&generated)).await.unwrap();
        let metrics = Arc::new(Metrics::new());
        Fixture {
            verifier: KeyVerifier::new(Arc::clone(&store), &config, Arc::clone(&metrics)),
            store,
            metrics,
            clear: generated.clear,
            _dir: dir,
        }
    }

    fn api_key(generated: &crate::auth::GeneratedKey) -> ApiKey {
        ApiKey {
            id: Uuid::now_v7(),
            partner_id: Uuid::now_v7(),
            key_id: generated.key_id.clone(),
            name: None,
            scopes: vec![Scope::Ingest],
            subsystem_id: None,
            expires_at: None,
            revoked_at: None,
            replaced_by: None,
            created_at: Utc::now(),
            secret_hash: generated.secret_hash.clone(),
        }
    }

    fn wrong_secret(clear: &str, attempt: usize) -> String {
        format!("{}_wrong{attempt}", &clear[.."vt_".len() + 16])
    }

    fn address(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    /// Makes the fixture's key look like one made before pre-checks existed.
    async fn without_pre_check(fixture: &Fixture) {
        let key_id = PresentedKey::parse(&fixture.clear).unwrap().key_id;
        let mut legacy = fixture
            .store
            .api_key_by_key_id(key_id)
            .await
            .unwrap()
            .unwrap();
        legacy.secret_hash.check = None;
        fixture.store.update_api_key(&legacy).await.unwrap();
    }

    #[tokio::test]
    async fn a_genuine_key_is_accepted_from_an_address_over_its_failure_budget() {
        let fixture = fixture(|config| config.max_failed_attempts_per_minute = 2).await;
        let attacker = address("10.0.0.1");
        for attempt in 0..2 {
            let wrong = wrong_secret(&fixture.clear, attempt);
            let outcome = fixture.verifier.verify(&wrong, attacker).await;
            assert!(matches!(outcome, Err(AuthError::Rejected(_))));
        }
        for attempt in 2..1_000 {
            let wrong = wrong_secret(&fixture.clear, attempt);
            let outcome = fixture.verifier.verify(&wrong, attacker).await;
            assert!(matches!(outcome, Err(AuthError::TooManyAttempts { .. })));
        }
        assert_eq!(fixture.metrics.auth_hashes.get(), 0);
        let genuine = fixture.verifier.verify(&fixture.clear, attacker).await;
        assert!(genuine.is_ok());
        assert_eq!(fixture.metrics.auth_hashes.get(), 1);
    }

    #[tokio::test]
    async fn a_key_without_a_pre_check_is_still_budgeted_per_client() {
        let fixture = fixture(|config| config.max_failed_attempts_per_minute = 2).await;
        without_pre_check(&fixture).await;
        let attacker = address("10.0.0.1");
        for attempt in 0..2 {
            let wrong = wrong_secret(&fixture.clear, attempt);
            let outcome = fixture.verifier.verify(&wrong, attacker).await;
            assert!(matches!(outcome, Err(AuthError::Rejected(_))));
        }
        let refused = fixture.verifier.verify(&fixture.clear, attacker).await;
        assert!(matches!(refused, Err(AuthError::TooManyAttempts { .. })));
        let elsewhere = fixture
            .verifier
            .verify(&fixture.clear, address("10.0.0.2"))
            .await;
        assert!(elsewhere.is_ok());
        assert_eq!(fixture.metrics.auth_hashes.get(), 3);
    }

    #[tokio::test]
    async fn a_proven_key_skips_the_budgets_and_the_hash() {
        let fixture = fixture(|config| {
            config.max_failed_attempts_per_minute = 1;
            config.key_cache_ttl = Duration::ZERO;
        })
        .await;
        without_pre_check(&fixture).await;
        let client = address("10.0.0.1");
        fixture
            .verifier
            .verify(&fixture.clear, client)
            .await
            .unwrap();
        let wrong = wrong_secret(&fixture.clear, 0);
        assert!(fixture.verifier.verify(&wrong, client).await.is_err());
        fixture
            .verifier
            .verify(&fixture.clear, client)
            .await
            .unwrap();
        assert_eq!(fixture.metrics.auth_hashes.get(), 2);
    }

    #[tokio::test]
    async fn a_revoked_key_is_refused_even_when_proven() {
        let fixture = fixture(|_| {}).await;
        let key = fixture.verifier.verify(&fixture.clear, None).await.unwrap();
        let mut revoked = (*key).clone();
        revoked.revoked_at = Some(Utc::now());
        fixture.store.update_api_key(&revoked).await.unwrap();
        fixture.verifier.forget_all();
        let refused = fixture.verifier.verify(&fixture.clear, None).await;
        assert!(matches!(refused, Err(AuthError::Rejected(reason)) if reason.contains("revoked")));
    }

    #[tokio::test]
    async fn the_instance_budget_refuses_hashes_past_its_rate_from_any_address() {
        let fixture = fixture(|config| config.max_hashes_per_second = 1).await;
        without_pre_check(&fixture).await;
        let first = wrong_secret(&fixture.clear, 0);
        assert!(matches!(
            fixture.verifier.verify(&first, address("10.0.0.1")).await,
            Err(AuthError::Rejected(_))
        ));
        let second = fixture
            .verifier
            .verify(&fixture.clear, address("10.0.0.2"))
            .await;
        assert!(matches!(second, Err(AuthError::TooManyAttempts { .. })));
        assert_eq!(fixture.metrics.auth_hashes.get(), 1);
    }

    #[tokio::test]
    async fn wrong_secrets_of_keys_without_a_pre_check_do_not_spend_the_pre_checked_budget() {
        let fixture = fixture(|config| config.max_hashes_per_second = 1).await;
        let generated = generate(ITERATIONS);
        let mut legacy = api_key(&generated);
        legacy.secret_hash.check = None;
        fixture.store.insert_api_key(&legacy).await.unwrap();
        let wrong = wrong_secret(&generated.clear, 0);
        assert!(fixture.verifier.verify(&wrong, None).await.is_err());
        assert!(fixture.verifier.verify(&fixture.clear, None).await.is_ok());
    }

    #[tokio::test]
    async fn an_unknown_key_id_costs_what_a_wrong_secret_costs() {
        let fixture = fixture(|_| {}).await;
        let unknown = fixture
            .verifier
            .verify("vt_0123456789abcdef_nope", None)
            .await;
        assert!(matches!(unknown, Err(AuthError::Rejected(_))));
        let wrong = wrong_secret(&fixture.clear, 0);
        let wrong = fixture.verifier.verify(&wrong, None).await;
        assert!(matches!(wrong, Err(AuthError::Rejected(_))));
        assert_eq!(fixture.metrics.auth_hashes.get(), 0);
    }

    #[test]
    fn ipv6_clients_share_a_budget_per_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            client_bucket(address("2001:db8:1:2:aaaa::1")),
            client_bucket(address("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            client_bucket(address("2001:db8:1:2::1")),
            client_bucket(address("2001:db8:1:3::1"))
        );
        assert_eq!(
            client_bucket(address("::ffff:10.0.0.1")),
            address("10.0.0.1")
        );
        assert_eq!(client_bucket(None), None);
    }
}

//! API keys: the `vt_<keyId>_<secret>` format, generation, and salted PBKDF2 hashing.
//! Only the hash is ever stored; the clear key exists once, in the create/rotate answer.
//!
//! Next to the PBKDF2 hash, a key keeps a 32-bit pre-check: the first 4 bytes of
//! SHA-256(domain ‖ salt ‖ secret). A wrong secret fails it with odds of 2^32 to 1, so
//! it is turned away for the price of one SHA-256, and the genuine secret always passes
//! to PBKDF2, however many wrong ones came before it. The secret holds 256 random bits,
//! so the 32 the pre-check gives a thief of the store leave 224 to guess: nothing that
//! PBKDF2 was guarding becomes reachable.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::{KEY_PREFIX as PREFIX, SecretHash};

const KEY_ID_BYTES: usize = 8;
const KEY_ID_CHARS: usize = KEY_ID_BYTES * 2;
const SECRET_BYTES: usize = 32;
const SALT_BYTES: usize = 16;
const HASH_BYTES: usize = 32;
const CHECK_BYTES: usize = 4;
/// Keeps the pre-check's SHA-256 from ever equalling another use of the same inputs.
const CHECK_DOMAIN: &[u8] = b"volcanion api key pre-check v1\0";

/// What the pre-check says of a presented secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreCheck {
    /// Not the key's secret: no need to hash it.
    Differs,
    /// Possibly the key's secret (certainly, if it is genuine): PBKDF2 decides.
    Passes,
    /// The key was made before pre-checks existed: only PBKDF2 can tell.
    Absent,
}

impl SecretHash {
    pub fn compute(secret: &str, iterations: u32) -> SecretHash {
        let salt: [u8; SALT_BYTES] = random_bytes();
        let hash = derive(secret, &salt, iterations);
        SecretHash {
            iterations,
            salt: STANDARD_NO_PAD.encode(salt),
            hash: STANDARD_NO_PAD.encode(hash),
            check: Some(STANDARD_NO_PAD.encode(pre_check(secret, &salt))),
        }
    }

    /// A stand-in for keys that do not exist: a wrong secret costs the same as against a
    /// real key (a pre-check that fails but for 1 in 2^32, then a PBKDF2 that never
    /// matches), so timing does not tell which key ids exist.
    pub fn never_matching(iterations: u32) -> SecretHash {
        SecretHash {
            iterations,
            salt: STANDARD_NO_PAD.encode([0u8; SALT_BYTES]),
            hash: STANDARD_NO_PAD.encode([0u8; HASH_BYTES]),
            check: Some(STANDARD_NO_PAD.encode(random_bytes::<CHECK_BYTES>())),
        }
    }

    /// One SHA-256, compared in constant time: cheap enough for every attempt.
    pub fn pre_check(&self, secret: &str) -> PreCheck {
        let Some(stored) = &self.check else {
            return PreCheck::Absent;
        };
        let (Ok(salt), Ok(expected)) = (
            STANDARD_NO_PAD.decode(&self.salt),
            STANDARD_NO_PAD.decode(stored),
        ) else {
            // A damaged record: let PBKDF2 (which fails on it too) have the last word.
            return PreCheck::Absent;
        };
        let actual = pre_check(secret, &salt);
        if bool::from(actual.ct_eq(expected.as_slice())) {
            PreCheck::Passes
        } else {
            PreCheck::Differs
        }
    }

    /// CPU-heavy (see `iterations`): call it off the async threads.
    pub fn matches(&self, secret: &str) -> bool {
        let (Ok(salt), Ok(expected)) = (
            STANDARD_NO_PAD.decode(&self.salt),
            STANDARD_NO_PAD.decode(&self.hash),
        ) else {
            return false;
        };
        let actual = derive(secret, &salt, self.iterations);
        actual.ct_eq(expected.as_slice()).into()
    }
}

fn pre_check(secret: &str, salt: &[u8]) -> [u8; CHECK_BYTES] {
    let digest = Sha256::new()
        .chain_update(CHECK_DOMAIN)
        .chain_update(salt)
        .chain_update(secret.as_bytes())
        .finalize();
    let mut check = [0u8; CHECK_BYTES];
    check.copy_from_slice(&digest[..CHECK_BYTES]);
    check
}

fn derive(secret: &str, salt: &[u8], iterations: u32) -> [u8; HASH_BYTES] {
    let mut output = [0u8; HASH_BYTES];
    pbkdf2::pbkdf2_hmac::<Sha256>(secret.as_bytes(), salt, iterations, &mut output);
    output
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source is unavailable");
    bytes
}

/// A freshly generated key; `clear` is shown to the caller once and then dropped.
pub struct GeneratedKey {
    pub key_id: String,
    pub clear: String,
    pub secret_hash: SecretHash,
}

pub fn generate(iterations: u32) -> GeneratedKey {
    let key_id = hex::encode(random_bytes::<KEY_ID_BYTES>());
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_BYTES>());
    let secret_hash = SecretHash::compute(&secret, iterations);
    GeneratedKey {
        clear: format!("{PREFIX}{key_id}_{secret}"),
        key_id,
        secret_hash,
    }
}

/// The two halves of a presented key. Parsing needs no I/O and no hashing, so garbage
/// is turned away for free.
#[derive(Debug, PartialEq, Eq)]
pub struct PresentedKey<'a> {
    pub key_id: &'a str,
    pub secret: &'a str,
}

impl<'a> PresentedKey<'a> {
    pub fn parse(raw: &'a str) -> Option<PresentedKey<'a>> {
        let rest = raw.strip_prefix(PREFIX)?;
        if rest.len() <= KEY_ID_CHARS + 1 || !rest.is_char_boundary(KEY_ID_CHARS) {
            return None;
        }
        let (key_id, tail) = rest.split_at(KEY_ID_CHARS);
        let secret = tail.strip_prefix('_')?;
        let key_id_ok = key_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let secret_ok = secret.len() <= 128
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        (key_id_ok && secret_ok).then_some(PresentedKey { key_id, secret })
    }

    /// Whether a string looks like one of our keys (as opposed to, say, the admin token).
    pub fn looks_like_key(raw: &str) -> bool {
        raw.starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiKey, Scope};
    use chrono::Utc;
    use uuid::Uuid;

    #[test]
    fn generated_key_parses_and_verifies() {
        let generated = generate(10);
        let presented = PresentedKey::parse(&generated.clear).unwrap();
        assert_eq!(presented.key_id, generated.key_id);
        assert!(generated.secret_hash.matches(presented.secret));
        assert!(!generated.secret_hash.matches("wrong-secret"));
    }

    #[test]
    fn secret_carries_at_least_128_bits() {
        let generated = generate(1);
        let secret = PresentedKey::parse(&generated.clear).unwrap().secret;
        assert!(URL_SAFE_NO_PAD.decode(secret).unwrap().len() * 8 >= 128);
    }

    #[test]
    fn the_pre_check_passes_the_genuine_secret_and_turns_wrong_ones_away() {
        let hash = SecretHash::compute("secret", 5);
        assert_eq!(hash.pre_check("secret"), PreCheck::Passes);
        let wrong_passing = (0..10_000)
            .filter(|attempt| hash.pre_check(&format!("wrong{attempt}")) != PreCheck::Differs)
            .count();
        assert_eq!(wrong_passing, 0);
    }

    #[test]
    fn keys_without_a_pre_check_are_left_to_pbkdf2() {
        let mut hash = SecretHash::compute("secret", 5);
        hash.check = None;
        assert_eq!(hash.pre_check("wrong"), PreCheck::Absent);
        assert!(hash.matches("secret"));
    }

    #[test]
    fn a_key_that_does_not_exist_never_matches() {
        let stand_in = SecretHash::never_matching(5);
        assert_eq!(stand_in.pre_check("anything"), PreCheck::Differs);
        assert!(!stand_in.matches("anything"));
    }

    #[test]
    fn same_secret_hashes_differently_with_fresh_salt() {
        let first = SecretHash::compute("secret", 5);
        let second = SecretHash::compute("secret", 5);
        assert_ne!(first.hash, second.hash);
        assert!(first.matches("secret") && second.matches("secret"));
    }

    #[test]
    fn malformed_keys_are_refused_without_hashing() {
        for raw in [
            "",
            "vt_",
            "vt_0123456789abcdef",
            "vt_0123456789abcdef_",
            "xx_0123456789abcdef_abc",
            "vt_0123456789ABCDEF_abc",
            "vt_0123456789abcdef_a b",
        ] {
            assert!(
                PresentedKey::parse(raw).is_none(),
                "{raw:?} should not parse"
            );
        }
    }

    #[test]
    fn secret_may_contain_underscores() {
        let parsed = PresentedKey::parse("vt_0123456789abcdef_ab_c-d").unwrap();
        assert_eq!(parsed.secret, "ab_c-d");
    }

    #[test]
    fn revoked_and_expired_keys_are_unusable() {
        let now = Utc::now();
        let generated = generate(1);
        let mut key = ApiKey {
            id: Uuid::now_v7(),
            partner_id: Uuid::now_v7(),
            key_id: generated.key_id,
            name: None,
            scopes: vec![Scope::Ingest],
            subsystem_id: None,
            expires_at: None,
            revoked_at: None,
            replaced_by: None,
            created_at: now,
            secret_hash: generated.secret_hash,
        };
        assert_eq!(key.unusable_reason(now), None);
        key.expires_at = Some(now - chrono::Duration::seconds(1));
        assert!(key.unusable_reason(now).unwrap().contains("expired"));
        key.revoked_at = Some(now);
        assert!(key.unusable_reason(now).unwrap().contains("revoked"));
    }
}

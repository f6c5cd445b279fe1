//! API keys: the `vt_<keyId>_<secret>` format, generation, and salted PBKDF2 hashing.
//! Only the hash is ever stored; the clear key exists once, in the create/rotate answer.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

const PREFIX: &str = "vt_";
const KEY_ID_BYTES: usize = 8;
const KEY_ID_CHARS: usize = KEY_ID_BYTES * 2;
const SECRET_BYTES: usize = 32;
const SALT_BYTES: usize = 16;
const HASH_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Ingest,
    Read,
}

/// A key as stored: public id, owner, permissions and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: Uuid,
    pub partner_id: Uuid,
    /// Public part of the key, used to find this row.
    pub key_id: String,
    pub name: Option<String>,
    pub scopes: Vec<Scope>,
    pub subsystem_id: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Set on the old key when it was rotated: the key that replaced it.
    pub replaced_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub secret_hash: SecretHash,
}

impl ApiKey {
    pub fn key_prefix(&self) -> String {
        format!("{PREFIX}{}", self.key_id)
    }

    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Why this key can't be used at `now`, if it can't.
    pub fn unusable_reason(&self, now: DateTime<Utc>) -> Option<&'static str> {
        if self.revoked_at.is_some_and(|revoked| revoked <= now) {
            return Some("the API key has been revoked");
        }
        if self.expires_at.is_some_and(|expires| expires <= now) {
            return Some("the API key has expired");
        }
        None
    }
}

/// Salted PBKDF2-HMAC-SHA256 of a key's secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretHash {
    pub iterations: u32,
    /// Standard base64, no padding.
    pub salt: String,
    pub hash: String,
}

impl SecretHash {
    pub fn compute(secret: &str, iterations: u32) -> SecretHash {
        let salt: [u8; SALT_BYTES] = random_bytes();
        let hash = derive(secret, &salt, iterations);
        SecretHash {
            iterations,
            salt: STANDARD_NO_PAD.encode(salt),
            hash: STANDARD_NO_PAD.encode(hash),
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
    let key_id = hex_lower(&random_bytes::<KEY_ID_BYTES>());
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_BYTES>());
    let secret_hash = SecretHash::compute(&secret, iterations);
    GeneratedKey {
        clear: format!("{PREFIX}{key_id}_{secret}"),
        key_id,
        secret_hash,
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
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

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The operator's token for the management API, kept only as a digest so comparisons
/// are constant-time and independent of the presented token's length.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl AdminToken {
    pub fn new(token: &SecretString) -> AdminToken {
        AdminToken {
            digest: Sha256::digest(token.expose_secret().as_bytes()).into(),
        }
    }

    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(&self.digest).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("AdminToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_exact_token() {
        let token = AdminToken::new(&SecretString::from("s3cret-token"));
        assert!(token.matches("s3cret-token"));
        assert!(!token.matches("s3cret-token "));
        assert!(!token.matches(""));
        assert!(!format!("{token:?}").contains("s3cret"));
    }
}

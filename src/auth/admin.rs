use std::path::Path;

use anyhow::Context;
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

const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Without a configured admin token, one is generated once into `<data_dir>/admin-token`
/// (mode 0600) and reused; its path is logged, never its value.
pub fn generated_admin_token(data_dir: &Path) -> anyhow::Result<SecretString> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let token = existing.trim().to_string();
        if !token.is_empty() {
            tracing::info!(path = %path.display(), "using the admin token from the data dir");
            return Ok(SecretString::from(token));
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| anyhow::anyhow!("no randomness for the admin token: {error}"))?;
    let token = hex::encode(bytes);
    write_private_file(&path, &token)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tracing::warn!(path = %path.display(), "no admin token configured: generated one into this file");
    Ok(SecretString::from(token))
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
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

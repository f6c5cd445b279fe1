use serde::{Deserialize, Serialize};

/// A partner or subsystem code: 1..=64 of `[a-z0-9._-]`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Code(String);

impl Code {
    pub fn parse(raw: &str) -> Result<Code, String> {
        let valid_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
        let starts_well = raw.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
        if raw.is_empty() || raw.len() > 64 || !starts_well || !raw.chars().all(valid_char) {
            return Err(format!(
                "'{raw}' is not a valid code: use 1 to 64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
            ));
        }
        Ok(Code(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_accept_lowercase_slugs_only() {
        assert!(Code::parse("web-shop_2.eu").is_ok());
        for bad in ["", "Web", "-shop", "a b", &"x".repeat(65)] {
            assert!(Code::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}

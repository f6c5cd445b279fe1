//! `[http]`: the public listener, request sizes and deadlines, and trusted proxies.

use std::net::SocketAddr;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::cidr::Cidr;
use super::lists::list_or_comma_separated;
use super::render::{bytes, duration};
use super::{ConfigError, first_failure};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Largest request body of a single-event request, after decompression.
    #[serde(with = "bytes")]
    pub max_request_size: ByteSize,
    /// Largest batch request body, after decompression.
    #[serde(with = "bytes")]
    pub max_batch_request_size: ByteSize,
    /// A connection that sends no complete request head within this (including an idle
    /// keep-alive connection between requests) is closed.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// The whole body of a request must arrive within this, or it is answered `408`.
    #[serde(with = "duration")]
    pub body_read_timeout: Duration,
    /// Connections open at once; lowered at start to fit the open-files limit.
    pub max_connections: usize,
    /// Request bodies held in memory at once, summed over all requests (after
    /// decompression); past it, new requests are answered `503`.
    #[serde(with = "bytes")]
    pub max_body_bytes_in_flight: ByteSize,
    /// At shutdown, how long requests in flight may take before their connections close.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed: a request whose peer is in
    /// one of these blocks comes from the right-most forwarded address outside them.
    /// A TOML array, or one comma-separated string (env).
    #[serde(deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<Cidr>,
}

fn cidr_list<'de, D>(deserializer: D) -> Result<Vec<Cidr>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    list_or_comma_separated(deserializer)?
        .iter()
        .map(|item| item.parse().map_err(serde::de::Error::custom))
        .collect()
}

impl HttpConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        first_failure([
            (
                self.header_read_timeout.is_zero() || self.body_read_timeout.is_zero(),
                format!(
                    "http.header_read_timeout and http.body_read_timeout must be > 0, got {} and {}",
                    humantime::format_duration(self.header_read_timeout),
                    humantime::format_duration(self.body_read_timeout)
                ),
            ),
            (
                self.max_connections == 0,
                "http.max_connections must be > 0, got 0".to_string(),
            ),
            (
                self.max_body_bytes_in_flight < self.max_batch_request_size,
                format!(
                    "http.max_body_bytes_in_flight ({}) must be at least http.max_batch_request_size ({}), or the largest batch could never be read",
                    self.max_body_bytes_in_flight, self.max_batch_request_size
                ),
            ),
            (
                self.max_request_size > self.max_batch_request_size,
                format!(
                    "http.max_request_size ({}) must not exceed http.max_batch_request_size ({})",
                    self.max_request_size, self.max_batch_request_size
                ),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format, Toml};

    use super::*;
    use crate::config::{Config, DEFAULT_TOML};

    #[test]
    fn trusted_proxies_accept_a_comma_separated_string_or_a_list_and_name_a_bad_block() {
        let from_text: HttpConfig = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(("http.trusted_proxies", "10.0.0.0/8, 2001:db8::/32"))
            .extract_inner("http")
            .unwrap();
        let from_list: HttpConfig = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(("http.trusted_proxies", ["10.0.0.0/8", "2001:db8::/32"]))
            .extract_inner("http")
            .unwrap();
        assert_eq!(from_text.trusted_proxies, from_list.trusted_proxies);
        assert_eq!(from_text.trusted_proxies.len(), 2);
        assert!(Config::defaults().http.trusted_proxies.is_empty());
        let error = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(("http.trusted_proxies", "10.0.0.0/40"))
            .extract_inner::<HttpConfig>("http")
            .unwrap_err()
            .to_string();
        assert!(error.contains("10.0.0.0/40"), "{error}");
    }
}

//! The configuration printed back as TOML (`volcanion check-config`): every value in the
//! form the loader reads (`"50ms"`, `"400days"`, `"40KiB"`), so the output can be saved
//! and passed to `--config` as it is. Secrets are left out and named in a comment.

use std::time::Duration;

use serde::Serializer;

use super::Config;

impl Config {
    /// TOML that loads back to this configuration, minus the secrets (named at the top).
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).expect("every config value has a TOML form");
        let secrets: Vec<&str> = [
            ("auth.admin_token", self.auth.admin_token.is_some()),
            ("redis.url", self.redis.url.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect();
        let header = if secrets.is_empty() {
            "# volcanion check-config: the configuration in effect.\n".to_string()
        } else {
            format!(
                "# volcanion check-config: the configuration in effect.\n\
                 # Set but not shown (secrets): {}.\n",
                secrets.join(", ")
            )
        };
        format!("{header}\n{body}")
    }
}

/// Durations: read with humantime (`"50ms"`, `"10m"`), written in the largest whole unit.
pub(super) mod duration {
    use super::*;

    pub use humantime_serde::deserialize;

    const UNITS: [(&str, u128); 6] = [
        ("days", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ];

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*value))
    }

    pub(in crate::config) fn format(value: Duration) -> String {
        let nanos = value.as_nanos();
        if nanos == 0 {
            return "0s".to_string();
        }
        UNITS
            .iter()
            .find(|(_, size)| nanos.is_multiple_of(*size))
            .map_or_else(
                || format!("{nanos}ns"),
                |(unit, size)| format!("{}{unit}", nanos / size),
            )
    }
}

/// Byte sizes: read with bytesize (`"1MiB"`, `"40KiB"`, `4096`), written in the largest
/// whole binary unit (bytesize's own text, `"1.0 MiB"`, would round `1500` to `"1.5 KiB"`).
pub(super) mod bytes {
    use bytesize::ByteSize;
    use serde::{Deserialize, Deserializer, Serializer};

    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ByteSize, D::Error> {
        ByteSize::deserialize(deserializer)
    }

    pub fn serialize<S: Serializer>(value: &ByteSize, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*value))
    }

    pub(in crate::config) fn format(value: ByteSize) -> String {
        let bytes = value.as_u64();
        UNITS
            .iter()
            .find(|(_, size)| bytes != 0 && bytes.is_multiple_of(*size))
            .map_or_else(
                || format!("{bytes}B"),
                |(unit, size)| format!("{}{unit}", bytes / size),
            )
    }
}

#[cfg(test)]
mod tests {
    use bytesize::ByteSize;
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn durations_and_sizes_are_written_in_whole_units() {
        assert_eq!(
            duration::format(Duration::from_secs(400 * 86_400)),
            "400days"
        );
        assert_eq!(duration::format(Duration::from_millis(250)), "250ms");
        assert_eq!(duration::format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration::format(Duration::ZERO), "0s");
        assert_eq!(bytes::format(ByteSize::kib(40)), "40KiB");
        assert_eq!(bytes::format(ByteSize::mib(5)), "5MiB");
        assert_eq!(bytes::format(ByteSize::b(1500)), "1500B");
    }

    #[test]
    fn the_printed_configuration_loads_back_to_the_same_values() {
        let mut config = Config::defaults();
        config.ingest.linger = Duration::from_millis(1500);
        config.http.max_request_size = ByteSize::b(1500);
        config.cassandra.local_datacenter = Some("dc1".to_string());
        let printed = config.to_toml();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &printed).unwrap();
        let reloaded = Config::load_from(Some(file.path()), []).unwrap();
        assert_eq!(reloaded.to_toml(), printed);
        assert_eq!(reloaded.ingest.linger, Duration::from_millis(1500));
    }

    #[test]
    fn secrets_are_named_but_never_printed() {
        let mut config = Config::defaults();
        config.auth.admin_token = Some(SecretString::from("very-secret-token"));
        config.redis.url = Some(SecretString::from("redis://:hunter2@10.0.0.1:6379"));
        let printed = config.to_toml();
        assert!(!printed.contains("very-secret-token"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(
            printed.contains("# Set but not shown (secrets): auth.admin_token, redis.url."),
            "{printed}"
        );
    }
}

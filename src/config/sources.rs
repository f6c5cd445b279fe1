//! Where settings come from, and what a mistake in them says. The `VOLCANION_…` variables
//! are a figment provider that remembers each variable's name, so that figment's errors can
//! be told back with the key as it was written (`VOLCANION_INGEST__LINGER`, or
//! `ingest.linger` in a named file) and, for an unknown key, the nearest valid one.

use figment::error::Kind;
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

use super::{ConfigError, DEFAULT_TOML};

const ENV_PREFIX: &str = "VOLCANION_";
/// The test and benchmark suites' own variables: never configuration.
const RESERVED_PREFIXES: [&str; 2] = ["VOLCANION_TEST_", "VOLCANION_BENCH_"];
/// Short environment names the API contract fixes, mapped onto their config keys.
const ENV_ALIASES: [(&str, &str); 3] = [
    ("listen", "http.listen"),
    ("data_dir", "store.data_dir"),
    ("admin_token", "auth.admin_token"),
];
/// Valid keys that `config/default.toml` leaves commented out (they default to unset).
const UNSET_BY_DEFAULT: [&str; 4] = [
    "auth.admin_token",
    "redis.url",
    "cassandra.local_datacenter",
    "enrich.geoip_db",
];
/// The provider name figment reports for values from the environment.
const ENVIRONMENT: &str = "environment";

/// The configuration variables of one process environment.
pub(super) struct Environment {
    variables: Vec<Variable>,
}

struct Variable {
    /// As written, e.g. `VOLCANION_INGEST__WRITERS`.
    name: String,
    /// The config key it sets, e.g. `ingest.writers`.
    key: String,
    value: String,
}

impl Environment {
    pub(super) fn from_variables(
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> Environment {
        let variables = variables
            .into_iter()
            .filter(|(name, _)| {
                name.starts_with(ENV_PREFIX)
                    && !RESERVED_PREFIXES
                        .iter()
                        .any(|prefix| name.starts_with(prefix))
            })
            .map(|(name, value)| Variable {
                key: key_of_variable(&name[ENV_PREFIX.len()..]),
                name,
                value,
            })
            .collect();
        Environment { variables }
    }

    /// The variable that set `key`, as written (or as it would be written).
    fn variable_of(&self, key: &str) -> String {
        self.variables
            .iter()
            .find(|variable| variable.key == key)
            .map_or_else(|| variable_of_key(key), |variable| variable.name.clone())
    }
}

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        Metadata::named(ENVIRONMENT)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut settings = Dict::new();
        for variable in &self.variables {
            // Like figment's own `Env`: "8", "true", "[1, 2]" become typed values.
            let value: Value = variable
                .value
                .parse()
                .expect("parsing a Value is infallible");
            insert_at(&mut settings, &variable.key, value);
        }
        Ok(Profile::Default.collect(settings))
    }
}

fn insert_at(settings: &mut Dict, key: &str, value: Value) {
    let Some((section, rest)) = key.split_once('.') else {
        settings.insert(key.to_string(), value);
        return;
    };
    let entry = settings
        .entry(section.to_string())
        .or_insert_with(|| Value::from(Dict::new()));
    if !matches!(entry, Value::Dict(..)) {
        *entry = Value::from(Dict::new());
    }
    if let Value::Dict(_, inner) = entry {
        insert_at(inner, rest, value);
    }
}

/// `INGEST__WRITERS` → `ingest.writers`; `LISTEN` → `http.listen`.
fn key_of_variable(unprefixed: &str) -> String {
    let lowercase = unprefixed.to_ascii_lowercase();
    ENV_ALIASES
        .iter()
        .find(|(alias, _)| *alias == lowercase)
        .map_or_else(|| lowercase.replace("__", "."), |(_, key)| key.to_string())
}

/// `ingest.writers` → `VOLCANION_INGEST__WRITERS`; `http.listen` → `VOLCANION_LISTEN`.
fn variable_of_key(key: &str) -> String {
    let unprefixed = ENV_ALIASES
        .iter()
        .find(|(_, target)| *target == key)
        .map_or_else(|| key.replace('.', "__"), |(alias, _)| alias.to_string());
    format!("{ENV_PREFIX}{}", unprefixed.to_ascii_uppercase())
}

/// Where a value came from, for the message.
enum Origin {
    Environment,
    File(String),
    Unknown,
}

impl Origin {
    fn of(error: &figment::Error) -> Origin {
        let Some(metadata) = &error.metadata else {
            return Origin::Unknown;
        };
        if metadata.name == ENVIRONMENT {
            return Origin::Environment;
        }
        match metadata
            .source
            .as_ref()
            .and_then(|source| source.file_path())
        {
            Some(path) => Origin::File(path.display().to_string()),
            None => Origin::Unknown,
        }
    }

    fn in_file(&self) -> String {
        match self {
            Origin::File(path) => format!(" in {path}"),
            Origin::Environment | Origin::Unknown => String::new(),
        }
    }
}

/// figment's error, told with the key as written. Only the first problem is reported:
/// figment stops at it.
pub(super) fn explain(error: figment::Error, environment: &Environment) -> ConfigError {
    let origin = Origin::of(&error);
    let key = error.path.join(".");
    match &error.kind {
        Kind::UnknownField(_, expected) => {
            let nearest = nearest_key(&key, &error.path, expected, &origin);
            let message = match &origin {
                Origin::Environment => format!(
                    "unknown environment variable {}{}",
                    environment.variable_of(&key),
                    suggestion(
                        nearest.map(|key| variable_of_key(&key)),
                        &error.path,
                        expected
                    )
                ),
                Origin::File(_) | Origin::Unknown => format!(
                    "unknown key `{key}`{}{}",
                    origin.in_file(),
                    suggestion(nearest.map(|key| format!("`{key}`")), &error.path, expected)
                ),
            };
            ConfigError::UnknownKey(message)
        }
        kind if key.is_empty() => ConfigError::Unreadable(match &origin {
            Origin::File(path) => format!("cannot read {path}: {kind}"),
            Origin::Environment | Origin::Unknown => kind.to_string(),
        }),
        kind => ConfigError::Unreadable(match &origin {
            Origin::Environment => format!("{}: {kind}", environment.variable_of(&key)),
            Origin::File(_) | Origin::Unknown => format!("`{key}`{}: {kind}", origin.in_file()),
        }),
    }
}

fn suggestion(nearest: Option<String>, path: &[String], expected: &[&str]) -> String {
    if let Some(nearest) = nearest {
        return format!("; did you mean {nearest}?");
    }
    match path.len() {
        0 | 1 => format!("; the sections are {}", expected.join(", ")),
        _ => format!(
            "; the keys of [{}] are {}",
            path[..path.len() - 1].join("."),
            expected.join(", ")
        ),
    }
}

/// The valid key closest to `key` (edit distance), if any is close enough to be the one meant.
fn nearest_key(key: &str, path: &[String], expected: &[&str], origin: &Origin) -> Option<String> {
    let parent = &path[..path.len().saturating_sub(1)];
    let siblings = expected.iter().map(|field| {
        let full: Vec<&str> = parent.iter().map(String::as_str).chain([*field]).collect();
        let full = full.join(".");
        (full.clone(), full)
    });
    // An alias is written without a section (`VOLCANION_LISTEN`), so compare it that way.
    let aliases = ENV_ALIASES
        .iter()
        .filter(|_| matches!(origin, Origin::Environment))
        .map(|(alias, target)| (alias.to_string(), target.to_string()));
    let written = key.to_ascii_lowercase();
    let max_distance = (written.len() / 3).max(2);
    all_keys()
        .into_iter()
        .map(|key| (key.clone(), key))
        .chain(siblings)
        .chain(aliases)
        .map(|(compared, key)| (strsim::levenshtein(&written, &compared), key))
        .filter(|(distance, _)| *distance <= max_distance)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, key)| key)
}

/// Every valid key: those in the defaults file and those it leaves unset.
fn all_keys() -> Vec<String> {
    let defaults: toml::Table = toml::from_str(DEFAULT_TOML).expect("config/default.toml is TOML");
    let mut keys: Vec<String> = UNSET_BY_DEFAULT.iter().map(|key| key.to_string()).collect();
    for (section, table) in &defaults {
        keys.push(section.clone());
        if let Some(table) = table.as_table() {
            keys.extend(table.keys().map(|key| format!("{section}.{key}")));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(toml: Option<&str>, variables: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let file = tempfile::NamedTempFile::new().expect("a temp file");
        std::fs::write(file.path(), toml.unwrap_or("")).expect("the temp file is written");
        let variables = variables
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()));
        Config::load_from(toml.map(|_| file.path()), variables)
    }

    fn message(result: Result<Config, ConfigError>) -> String {
        result
            .expect_err("the configuration is refused")
            .to_string()
    }

    #[test]
    fn an_unknown_key_in_a_file_names_it_and_the_nearest_valid_key() {
        let text = message(load(Some("[ingest]\nlinger_ms = 5\n"), &[]));
        assert!(
            text.starts_with("unknown key `ingest.linger_ms` in "),
            "{text}"
        );
        assert!(text.ends_with("; did you mean `ingest.linger`?"), "{text}");
    }

    #[test]
    fn an_unknown_section_names_the_nearest_section() {
        let text = message(load(Some("[ingst]\nwriters = 4\n"), &[]));
        assert!(text.contains("unknown key `ingst`"), "{text}");
        assert!(text.ends_with("did you mean `ingest`?"), "{text}");
    }

    #[test]
    fn a_key_that_is_unset_by_default_is_still_suggested() {
        let text = message(load(Some("[cassandra]\nlocal_datacentre = \"dc1\"\n"), &[]));
        assert!(
            text.ends_with("did you mean `cassandra.local_datacenter`?"),
            "{text}"
        );
    }

    #[test]
    fn a_key_far_from_any_lists_the_valid_ones() {
        let text = message(load(Some("[ingest]\nbanana = 1\n"), &[]));
        assert!(
            text.contains("the keys of [ingest] are acknowledge, ack_timeout, queue_capacity"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_variable_is_named_as_written_with_the_nearest_variable() {
        let text = message(load(None, &[("VOLCANION_INGEST_WRITERS", "4")]));
        assert_eq!(
            text,
            "unknown environment variable VOLCANION_INGEST_WRITERS; did you mean VOLCANION_INGEST__WRITERS?"
        );
        let text = message(load(None, &[("VOLCANION_LISTN", "127.0.0.1:1")]));
        assert!(text.ends_with("did you mean VOLCANION_LISTEN?"), "{text}");
    }

    #[test]
    fn a_wrong_value_names_the_variable_as_written() {
        let text = message(load(None, &[("VOLCANION_INGEST__WRITERS", "many")]));
        assert!(
            text.starts_with("VOLCANION_INGEST__WRITERS: invalid type"),
            "{text}"
        );
        let text = message(load(None, &[("VOLCANION_LISTEN", "nowhere")]));
        assert!(text.starts_with("VOLCANION_LISTEN: "), "{text}");
    }

    #[test]
    fn a_wrong_value_in_a_file_names_the_key_and_the_file() {
        let text = message(load(Some("[ingest]\nlinger = \"soon\"\n"), &[]));
        assert!(text.starts_with("`ingest.linger` in "), "{text}");
        assert!(
            !text.contains("default."),
            "no profile name in the key: {text}"
        );
    }

    #[test]
    fn a_file_that_is_not_toml_says_where() {
        let text = message(load(Some("[ingest\n"), &[]));
        assert!(text.starts_with("cannot read "), "{text}");
        assert!(text.contains("TOML parse error"), "{text}");
    }

    #[test]
    fn the_test_suites_variables_are_not_configuration() {
        let config = load(
            None,
            &[
                ("VOLCANION_TEST_CASSANDRA_NODES", "127.0.0.1:9042"),
                ("VOLCANION_BENCH_REDIS_URL", "redis://127.0.0.1:6379"),
                ("VOLCANION_INGEST__WRITERS", "4"),
                ("VOLCANION_DATA_DIR", "/tmp/somewhere"),
            ],
        )
        .unwrap();
        assert_eq!(config.ingest.writers, 4);
        assert_eq!(
            config.store.data_dir,
            std::path::PathBuf::from("/tmp/somewhere")
        );
    }

    #[test]
    fn every_key_left_unset_by_default_is_a_real_key() {
        let file = UNSET_BY_DEFAULT
            .iter()
            .map(|key| {
                let (section, name) = key.split_once('.').unwrap();
                format!("[{section}]\n{name} = \"redis://127.0.0.1:6379\"\n")
            })
            .collect::<String>();
        load(Some(&file), &[]).unwrap();
    }
}

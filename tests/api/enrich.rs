//! Enrichment against a real GeoIP database, and the start-up errors for a bad one.
//!
//! The country tests need a MaxMind-format database: `scripts/geoip.sh install` puts the
//! free ip-location-db country database in ~/.cache/volcanion/geoip, and
//! `VOLCANION_TEST_GEOIP_DB=$(scripts/geoip.sh path)` names it. Like the Cassandra tests
//! they are `#[ignore]`d, so a plain `cargo test` lists them as ignored; with
//! `--include-ignored` a missing variable is a failure, never a silent pass. The addresses
//! are ones whose registration has long been stable (Google's public DNS, RIPE NCC's own
//! and APNIC's own networks), checked against the installed database.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use volcanion::config::{Config, EnrichConfig};
use volcanion::enrich::{EnrichInput, Enricher};
use volcanion::model::{Enrichment, JsonObject};
use volcanion::telemetry::Metrics;

const GEOIP_DB_ENV: &str = "VOLCANION_TEST_GEOIP_DB";

/// The configured database. Panics when it is not set: these tests run only when asked
/// for (`--include-ignored`), and then they must not pass by doing nothing.
fn config_with_geoip_db(test: &str) -> EnrichConfig {
    let path = std::env::var(GEOIP_DB_ENV)
        .ok()
        .filter(|path| !path.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{test} needs a GeoIP database: set {GEOIP_DB_ENV}=path.mmdb \
                 (scripts/geoip.sh install, then scripts/geoip.sh path)"
            )
        });
    let mut config = Config::defaults().enrich;
    config.geoip_db = Some(PathBuf::from(path));
    config
}

fn enrich(
    enricher: &Enricher,
    context: serde_json::Value,
    client_address: Option<&str>,
) -> Enrichment {
    let context = JsonObject::from_map(context.as_object().unwrap());
    enricher.enrich(&EnrichInput {
        context: &context,
        properties: &JsonObject::empty(),
        request_user_agent: None,
        client_address: client_address.map(|address| address.parse::<IpAddr>().unwrap()),
        own_hosts: &[],
    })
}

#[test]
#[ignore = "needs a GeoIP database: VOLCANION_TEST_GEOIP_DB (scripts/geoip.sh) and --include-ignored"]
fn countries_come_from_context_ip_else_the_client_address() {
    let config = config_with_geoip_db("countries_come_from_context_ip_else_the_client_address");
    let enricher = Enricher::new(&config, Arc::new(Metrics::new())).unwrap();
    let country = |context, client: Option<&str>| enrich(&enricher, context, client).country;

    assert_eq!(
        country(json!({"ip": "8.8.8.8"}), None).as_deref(),
        Some("US")
    );
    assert_eq!(
        country(json!({"ip": "193.0.6.139"}), Some("8.8.8.8")).as_deref(),
        Some("NL")
    );
    assert_eq!(
        country(json!({}), Some("202.12.29.205")).as_deref(),
        Some("AU")
    );
    assert_eq!(
        country(json!({"ip": "not an address"}), Some("8.8.8.8")).as_deref(),
        Some("US")
    );
    assert_eq!(
        country(json!({"ip": "2001:4860:4860::8888"}), None).as_deref(),
        Some("US")
    );
}

#[test]
#[ignore = "needs a GeoIP database: VOLCANION_TEST_GEOIP_DB (scripts/geoip.sh) and --include-ignored"]
fn private_and_reserved_addresses_have_no_country() {
    let config = config_with_geoip_db("private_and_reserved_addresses_have_no_country");
    let enricher = Enricher::new(&config, Arc::new(Metrics::new())).unwrap();
    // The npm release of the database gives 192.168.1.1 a country (AU): the address
    // ranges are checked before the database is asked.
    for address in ["10.1.2.3", "127.0.0.1", "192.168.1.1", "::1", "fd00::1"] {
        assert_eq!(
            enrich(&enricher, json!({}), Some(address)).country,
            None,
            "{address}"
        );
    }
}

#[test]
fn a_missing_geoip_database_is_a_start_up_error_naming_the_key_and_file() {
    let directory = tempfile::tempdir().unwrap();
    let mut config = Config::defaults().enrich;
    config.geoip_db = Some(directory.path().join("country.mmdb"));
    let error = Enricher::new(&config, Arc::new(Metrics::new()))
        .err()
        .expect("a missing file is refused");
    let message = error.to_string();
    assert!(message.contains("enrich.geoip_db"), "{message}");
    assert!(
        message.contains("country.mmdb") && message.contains("does not exist"),
        "{message}"
    );
}

#[test]
fn a_file_that_is_not_an_mmdb_is_a_start_up_error() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("country.mmdb");
    std::fs::write(&path, "country_code,start,end\nUS,8.8.8.0,8.8.8.255\n").unwrap();
    let mut config = Config::defaults().enrich;
    config.geoip_db = Some(path);
    let error = Enricher::new(&config, Arc::new(Metrics::new()))
        .err()
        .expect("a file that is not an mmdb is refused");
    let message = error.to_string();
    assert!(message.contains("enrich.geoip_db"), "{message}");
    assert!(message.contains("is not a MaxMind-format"), "{message}");
}

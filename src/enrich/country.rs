//! Countries from a MaxMind-format database the operator supplies (`enrich.geoip_db`),
//! read into memory once at start. Two record shapes are understood: GeoIP2's
//! (`country.iso_code`: GeoLite2, DB-IP lite) and ip-location-db's (`country_code`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use maxminddb::{MaxMindDbError, Reader};
use serde::Deserialize;

/// The GeoIP database could not be used; the instance refuses to start with it.
#[derive(Debug, thiserror::Error)]
pub enum GeoIpError {
    #[error("enrich.geoip_db: {} does not exist (unset enrich.geoip_db to run without countries)", path.display())]
    Missing { path: PathBuf },
    #[error("enrich.geoip_db: {} is not a MaxMind-format (.mmdb) database: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: MaxMindDbError,
    },
}

pub(super) struct Countries {
    reader: Reader<Vec<u8>>,
}

/// The fields read of a record, in either shape; the rest of it is skipped.
#[derive(Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow)]
    country: Option<Geoip2Country<'a>>,
    country_code: Option<&'a str>,
}

/// Whether `address` can be on the public internet, hence in some country. Asked before
/// the database: free databases have been seen to give private ranges a country
/// (ip-location-db's npm release puts 192.168.1.1 in AU), and a client address behind an
/// unlisted proxy is often private.
fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => {
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local()
                    || (v6.segments()[0] == 0x2001 && v6.segments()[1] == 0x0db8))
            }
        },
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [first, second, ..] = v4.octets();
    let shared = first == 100 && (64..128).contains(&second);
    let reserved = first >= 240;
    !(v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_documentation()
        || v4.is_multicast()
        || shared
        || reserved
        || first == 0)
}

#[derive(Deserialize)]
struct Geoip2Country<'a> {
    iso_code: Option<&'a str>,
}

impl Countries {
    pub fn open(path: &Path) -> Result<Countries, GeoIpError> {
        if !path.is_file() {
            return Err(GeoIpError::Missing {
                path: path.to_path_buf(),
            });
        }
        let reader = Reader::open_readfile(path).map_err(|source| GeoIpError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Countries { reader })
    }

    /// The ISO 3166-1 alpha-2 code (uppercase) the database gives `address`, if any.
    /// Private and reserved addresses, and records without a two-letter code, give none.
    pub fn lookup(&self, address: IpAddr) -> Option<String> {
        if !is_public(address) {
            return None;
        }
        let found = self.reader.lookup(address).ok()?;
        let record: CountryRecord = found.decode().ok()??;
        let code = record
            .country
            .and_then(|country| country.iso_code)
            .or(record.country_code)?;
        let is_alpha_2 = code.len() == 2 && code.bytes().all(|byte| byte.is_ascii_alphabetic());
        is_alpha_2.then(|| code.to_ascii_uppercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_reserved_addresses_are_not_public() {
        for address in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "192.0.2.1",
            "0.0.0.0",
            "255.255.255.255",
            "240.0.0.1",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "2001:db8::1",
            "::ffff:192.168.1.1",
        ] {
            assert!(!is_public(address.parse().unwrap()), "{address}");
        }
        for address in [
            "8.8.8.8",
            "193.0.6.139",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(address.parse().unwrap()), "{address}");
        }
    }
}

//! Countries from a MaxMind-format database the operator supplies (`enrich.geoip_db`),
//! read into memory once at start. Two record shapes are understood: GeoIP2's
//! (`country.iso_code`: GeoLite2, DB-IP lite) and ip-location-db's (`country_code`).

use std::net::IpAddr;
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

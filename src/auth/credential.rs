//! Where a request's credential is found, from the header and query values an adapter
//! hands over: `X-API-Key`, `Authorization: Bearer`, Basic auth's username (Segment's
//! write key), or `?apiKey=` (browsers' `sendBeacon` can't set headers). A key in the
//! URL lands in proxy and access logs, so only ingest keys may come that way (their
//! holders ship them to every browser anyway); `Authenticator` refuses it elsewhere.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A credential as presented. The admin token is accepted only as a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedCredential {
    pub token: String,
    pub bearer: bool,
    /// The address it came from, which wrong keys are counted against; `None` when the
    /// adapter does not know it (all such requests share one budget).
    pub client: Option<IpAddr>,
    /// The request's URL holds `?apiKey=` (whether or not the credential is that one).
    pub url_key: bool,
}

impl PresentedCredential {
    /// A key sent in a body field (`apiKey`, Segment's `writeKey`).
    pub fn in_body(token: String) -> PresentedCredential {
        PresentedCredential {
            token,
            bearer: false,
            client: None,
            url_key: false,
        }
    }

    /// The same credential, as sent from `client`.
    pub fn with_client(self, client: Option<IpAddr>) -> PresentedCredential {
        PresentedCredential { client, ..self }
    }
}

/// The raw values a credential may come in.
#[derive(Debug, Clone, Copy, Default)]
pub struct CredentialSources<'a> {
    pub x_api_key: Option<&'a str>,
    pub authorization: Option<&'a str>,
    /// The URL's query string, without `?`.
    pub query: Option<&'a str>,
}

impl CredentialSources<'_> {
    pub fn credential(&self) -> Option<PresentedCredential> {
        let url_key = self.url_key();
        let url_key_given = url_key.is_some();
        let found = self
            .header_credential()
            .or_else(|| url_key.map(PresentedCredential::in_body))?;
        Some(PresentedCredential {
            url_key: url_key_given,
            ..found
        })
    }

    fn url_key(&self) -> Option<String> {
        form_urlencoded::parse(self.query?.as_bytes())
            .find_map(|(key, value)| (key == "apiKey").then(|| value.into_owned()))
    }

    fn header_credential(&self) -> Option<PresentedCredential> {
        if let Some(key) = self.x_api_key {
            return Some(PresentedCredential::in_body(key.trim().to_string()));
        }
        if let Some(authorization) = self.authorization {
            let (scheme, value) = authorization
                .trim()
                .split_once(' ')
                .unwrap_or((authorization, ""));
            if scheme.eq_ignore_ascii_case("bearer") {
                return Some(PresentedCredential {
                    token: value.trim().to_string(),
                    bearer: true,
                    client: None,
                    url_key: false,
                });
            }
            if scheme.eq_ignore_ascii_case("basic") {
                let decoded = STANDARD
                    .decode(value.trim())
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())?;
                let username = decoded
                    .split_once(':')
                    .map_or(decoded.as_str(), |(user, _)| user);
                return Some(PresentedCredential::in_body(username.to_string()));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_key_in_each_supported_place() {
        let basic = format!("Basic {}", STANDARD.encode("vt_a:"));
        let cases = [
            CredentialSources {
                x_api_key: Some("vt_a"),
                ..Default::default()
            },
            CredentialSources {
                authorization: Some("Bearer vt_a"),
                ..Default::default()
            },
            CredentialSources {
                authorization: Some(&basic),
                ..Default::default()
            },
            CredentialSources {
                query: Some("apiKey=vt_a"),
                ..Default::default()
            },
        ];
        for sources in cases {
            assert_eq!(sources.credential().unwrap().token, "vt_a");
        }
    }

    #[test]
    fn a_credential_knows_its_client_only_once_told() {
        let sources = CredentialSources {
            x_api_key: Some("vt_a"),
            ..Default::default()
        };
        let found = sources.credential().unwrap();
        assert_eq!(found.client, None);
        let client = Some(IpAddr::from([192, 0, 2, 7]));
        assert_eq!(found.with_client(client).client, client);
    }

    #[test]
    fn a_key_in_the_url_is_noted_even_when_a_header_carries_the_credential() {
        let both = CredentialSources {
            x_api_key: Some("vt_header"),
            query: Some("from=x&apiKey=vt_url"),
            ..Default::default()
        };
        let found = both.credential().unwrap();
        assert_eq!((found.token.as_str(), found.url_key), ("vt_header", true));
        let header_only = CredentialSources {
            x_api_key: Some("vt_header"),
            query: Some("from=x"),
            ..Default::default()
        };
        assert!(!header_only.credential().unwrap().url_key);
    }

    #[test]
    fn only_bearer_credentials_count_as_bearer() {
        let bearer = CredentialSources {
            authorization: Some("bearer tok"),
            ..Default::default()
        };
        assert!(bearer.credential().unwrap().bearer);
        let header = CredentialSources {
            x_api_key: Some("tok"),
            ..Default::default()
        };
        assert!(!header.credential().unwrap().bearer);
    }
}

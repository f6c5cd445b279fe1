//! Reading requests: JSON bodies (with the content types we accept), query strings, path
//! ids and credentials, all failing as problem+json. Who the credential proves is
//! `auth::Authenticator`'s business; the extractors only hand it over.

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use uuid::Uuid;

use crate::auth::{Caller, CredentialSources, PresentedCredential};
use crate::error::ErrorKind;
use crate::http::client_address::ClientAddress;
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::telemetry::record_partner;

/// Which bodies an endpoint takes: JSON, or also `text/plain` (browsers' `sendBeacon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    JsonOrBeacon,
}

/// Checks the content type and size of a body and returns its bytes.
pub fn json_bytes(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: BodyKind,
) -> Result<Bytes, ApiError> {
    check_content_type(headers, kind)?;
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            ErrorKind::PayloadTooLarge,
            "the request body is larger than this endpoint accepts",
        ),
        _ => ApiError::invalid(format!(
            "cannot read the request body: {}",
            rejection.body_text()
        )),
    })
}

/// `415` unless the body is declared as JSON (or `text/plain`, where beacons are allowed).
pub fn check_content_type(headers: &HeaderMap, kind: BodyKind) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let accepted = match content_type.as_deref() {
        None => true,
        Some("application/json") => true,
        Some(other) if other.starts_with("application/") && other.ends_with("+json") => true,
        Some("text/plain") => kind == BodyKind::JsonOrBeacon,
        Some(_) => false,
    };
    if !accepted {
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            format!(
                "the body must be JSON (Content-Type: application/json), got {}",
                content_type.unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

/// Parses a typed JSON body, naming the offending field when serde can.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "the request body is empty; a JSON object is expected",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(body_error)?;
    deserializer
        .end()
        .map_err(|error| ApiError::invalid(format!("invalid JSON body: {error}")))?;
    Ok(value)
}

/// A body that is JSON but not of the expected shape names the field at fault, as the
/// client wrote it (`scopes[0]`, `name`); broken JSON says where it breaks.
fn body_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    if inner.classify() != serde_json::error::Category::Data {
        return ApiError::invalid(format!("invalid JSON body: {inner}"));
    }
    let text = inner.to_string();
    let message = text.split(" at line ").next().unwrap_or(&text);
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    // The path of a missing field stops at its parent; an unknown one's includes it.
    let field = match (named, path.as_str()) {
        (Some(name), ".") => name.to_string(),
        (Some(name), parent) if !parent.ends_with(name) => format!("{parent}.{name}"),
        (_, ".") => "body".to_string(),
        (_, path) => path.to_string(),
    };
    let message = match named {
        Some(_) if message.starts_with("missing") => "is required".to_string(),
        Some(_) => format!(
            "is not a known field ({})",
            message.trim_start_matches("unknown field ")
        ),
        None => message.to_string(),
    };
    ApiError::field(&field, message)
}

/// A typed JSON body of a management endpoint (content type, size and shape checked).
pub fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    parse_json(&json_bytes(headers, body, BodyKind::Json)?)
}

/// Query-string parameters, failing as problem+json.
pub fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(value)| value).map_err(|rejection| {
        ApiError::invalid(format!("invalid query string: {}", rejection.body_text()))
    })
}

/// The credential of a request: `X-API-Key`, `Authorization` (Bearer, or Basic's
/// username), or `?apiKey=`.
pub fn presented_credential(parts: &Parts) -> Option<PresentedCredential> {
    let client = client_address(parts);
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    CredentialSources {
        x_api_key: header("x-api-key"),
        authorization: header(header::AUTHORIZATION.as_str()),
        query: parts.uri.query(),
    }
    .credential()
    .map(|credential| credential.with_client(client))
}

/// The address the request came from: the peer, or the client a trusted proxy forwarded
/// (resolved once per request by `http::client_address`).
pub fn client_address(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<ClientAddress>()
        .map(|ClientAddress(address)| *address)
}

/// Extractor for management endpoints: the admin token, nothing else.
pub struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Admin, ApiError> {
        state
            .authenticator
            .admin(presented_credential(parts))
            .instrument(tracing::info_span!("authenticate"))
            .await?;
        Ok(Admin)
    }
}

/// Extractor for read endpoints: the admin token, or an API key with the `read` scope.
pub struct Reader(pub Caller);

impl FromRequestParts<Arc<AppState>> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Reader, ApiError> {
        let caller = state
            .authenticator
            .reader(presented_credential(parts))
            .instrument(tracing::info_span!("authenticate"))
            .await?;
        if let Caller::Key(holder) = &caller {
            record_partner(holder.partner.id);
        }
        Ok(Reader(caller))
    }
}

/// Path ids that are not UUIDs name nothing: 404, like an unknown id.
pub fn path_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no {what} with id '{raw}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Draft {
        name: String,
        rate_limit_per_minute: Option<u32>,
        scopes: Option<Vec<u8>>,
    }

    fn field_of(body: &str) -> (String, String) {
        let error = parse_json::<Draft>(body.as_bytes()).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        let first = error.errors.first().expect("a field error").clone();
        (first.field, first.message)
    }

    #[test]
    fn shape_errors_name_the_field_as_the_client_wrote_it() {
        assert_eq!(field_of(r#"{"rateLimitPerMinute": 5}"#).0, "name");
        assert_eq!(field_of(r#"{"rateLimitPerMinute": 5}"#).1, "is required");
        let (field, message) = field_of(r#"{"name": "a", "rateLimitPerMinute": "many"}"#);
        assert_eq!(field, "rateLimitPerMinute");
        assert!(message.starts_with("invalid type"), "{message}");
        assert_eq!(
            field_of(r#"{"name": "a", "scopes": [1, "x"]}"#).0,
            "scopes[1]"
        );
        let (field, message) = field_of(r#"{"name": "a", "colour": 1}"#);
        assert_eq!(field, "colour");
        assert!(message.contains("expected one of"), "{message}");
    }

    #[test]
    fn broken_json_is_refused_without_a_field() {
        let error = parse_json::<Draft>(br#"{"name": "#).unwrap_err();
        assert!(error.errors.is_empty());
        assert!(error.detail.starts_with("invalid JSON body"));
    }

    #[test]
    fn form_and_text_bodies_are_refused_unless_beacon() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "text/plain;charset=UTF-8".parse().unwrap(),
        );
        assert!(
            json_bytes(
                &headers,
                Ok(Bytes::from_static(b"{}")),
                BodyKind::JsonOrBeacon
            )
            .is_ok()
        );
        let refused =
            json_bytes(&headers, Ok(Bytes::from_static(b"{}")), BodyKind::Json).unwrap_err();
        assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let refused = json_bytes(
            &headers,
            Ok(Bytes::from_static(b"a=b")),
            BodyKind::JsonOrBeacon,
        )
        .unwrap_err();
        assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}

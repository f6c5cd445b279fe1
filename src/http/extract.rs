//! Reading requests: JSON bodies (with the content types we accept), query strings,
//! and credentials, all failing as problem+json.

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::auth::{ApiKey, AuthFailure, PresentedKey, Scope};
use crate::error::{ApiError, ErrorKind};
use crate::http::state::AppState;

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

/// Parses a typed JSON body, naming the offending field when serde can.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "the request body is empty; a JSON object is expected",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|error| ApiError::invalid(format!("invalid JSON body: {error}")))
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

/// The caller, once authenticated.
#[derive(Clone)]
pub enum Principal {
    Admin,
    Key(Arc<ApiKey>),
}

/// Where a credential was found: the admin token is accepted only as a bearer token.
pub struct PresentedCredential {
    pub token: String,
    pub bearer: bool,
}

/// The credential of a request, from `X-API-Key`, `Authorization: Bearer`, Basic auth's
/// username (Segment), or `?apiKey=` (for `sendBeacon`, which can't set headers).
pub fn presented_credential(parts: &Parts) -> Option<PresentedCredential> {
    let headers = &parts.headers;
    if let Some(key) = headers
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
    {
        return Some(PresentedCredential {
            token: key.trim().to_string(),
            bearer: false,
        });
    }
    if let Some(authorization) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    {
        let (scheme, value) = authorization
            .trim()
            .split_once(' ')
            .unwrap_or((authorization, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(PresentedCredential {
                token: value.trim().to_string(),
                bearer: true,
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
            return Some(PresentedCredential {
                token: username.to_string(),
                bearer: false,
            });
        }
    }
    let query = parts.uri.query()?;
    form_urlencoded_value(query, "apiKey").map(|token| PresentedCredential {
        token,
        bearer: false,
    })
}

fn form_urlencoded_value(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find_map(|(key, value)| (key == name).then(|| value.into_owned()))
}

/// Resolves a presented token to a principal: the admin token, or a usable API key
/// of an active partner (and active pinned subsystem).
pub async fn authenticate(
    state: &AppState,
    credential: Option<PresentedCredential>,
) -> Result<Principal, ApiError> {
    let Some(credential) = credential.filter(|credential| !credential.token.is_empty()) else {
        return Err(ApiError::unauthenticated(
            "credentials are required: send an API key in X-API-Key or Authorization: Bearer",
        ));
    };
    if !PresentedKey::looks_like_key(&credential.token) {
        return if credential.bearer && state.admin_token.matches(&credential.token) {
            Ok(Principal::Admin)
        } else {
            Err(ApiError::unauthenticated("the credentials are not valid"))
        };
    }
    let key = state
        .verifier
        .verify(&credential.token)
        .await
        .map_err(|failure| match failure {
            AuthFailure::Rejected(reason) => ApiError::unauthenticated(reason),
            AuthFailure::TooManyAttempts { retry_after } => {
                let mut error = ApiError::new(
                    ErrorKind::RateLimited,
                    "too many failed attempts with this API key id; try later",
                );
                error.retry_after = Some(retry_after);
                error
            }
            AuthFailure::Unavailable(cause) => {
                tracing::warn!(error = %cause, "cannot verify an API key");
                ApiError::unavailable(
                    "credentials cannot be checked right now",
                    std::time::Duration::from_secs(1),
                )
            }
        })?;
    let partner = state.directory.partner(key.partner_id).await?;
    if !partner.is_some_and(|partner| partner.is_active()) {
        return Err(ApiError::unauthenticated(
            "the API key's partner is inactive",
        ));
    }
    if let Some(pinned) = key.subsystem_id {
        let subsystem = state.directory.subsystem(pinned).await?;
        if !subsystem.is_some_and(|subsystem| subsystem.is_active()) {
            return Err(ApiError::unauthenticated(
                "the API key's subsystem is inactive",
            ));
        }
    }
    Ok(Principal::Key(key))
}

/// Extractor for management endpoints: the admin token, nothing else.
pub struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Admin, ApiError> {
        match authenticate(state, presented_credential(parts)).await? {
            Principal::Admin => Ok(Admin),
            Principal::Key(_) => Err(ApiError::forbidden(
                "this endpoint needs the admin token, not an API key",
            )),
        }
    }
}

/// Extractor for read endpoints: the admin token, or an API key with the `read` scope.
pub struct Reader(pub Principal);

impl FromRequestParts<Arc<AppState>> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Reader, ApiError> {
        let principal = authenticate(state, presented_credential(parts)).await?;
        if let Principal::Key(key) = &principal
            && !key.has_scope(Scope::Read)
        {
            return Err(ApiError::forbidden("this API key lacks the 'read' scope"));
        }
        Ok(Reader(principal))
    }
}

/// An API key with the `ingest` scope.
pub fn require_ingest_key(principal: Principal) -> Result<Arc<ApiKey>, ApiError> {
    match principal {
        Principal::Key(key) if key.has_scope(Scope::Ingest) => Ok(key),
        Principal::Key(_) => Err(ApiError::forbidden("this API key lacks the 'ingest' scope")),
        Principal::Admin => Err(ApiError::forbidden(
            "events are sent with a partner's API key (scope 'ingest'), not the admin token",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(request: Request<()>) -> Parts {
        request.into_parts().0
    }

    #[test]
    fn finds_the_key_in_each_supported_place() {
        let cases = [
            Request::builder()
                .header("x-api-key", "vt_a")
                .body(())
                .unwrap(),
            Request::builder()
                .header("authorization", "Bearer vt_a")
                .body(())
                .unwrap(),
            Request::builder()
                .header(
                    "authorization",
                    format!("Basic {}", STANDARD.encode("vt_a:")),
                )
                .body(())
                .unwrap(),
            Request::builder()
                .uri("/v1/track?apiKey=vt_a")
                .body(())
                .unwrap(),
        ];
        for request in cases {
            assert_eq!(presented_credential(&parts(request)).unwrap().token, "vt_a");
        }
    }

    #[test]
    fn only_bearer_credentials_count_as_bearer() {
        let bearer = Request::builder()
            .header("authorization", "bearer tok")
            .body(())
            .unwrap();
        assert!(presented_credential(&parts(bearer)).unwrap().bearer);
        let header = Request::builder()
            .header("x-api-key", "tok")
            .body(())
            .unwrap();
        assert!(!presented_credential(&parts(header)).unwrap().bearer);
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

//! Who is calling: API key format and hashing, the verification cache, the admin token.
//! No HTTP here; the extractors that read credentials from requests live in `http/`.

mod admin;
mod api_key;
mod verifier;

pub use admin::AdminToken;
pub use api_key::{ApiKey, GeneratedKey, PresentedKey, Scope, SecretHash, generate};
pub use verifier::{AuthFailure, KeyVerifier};

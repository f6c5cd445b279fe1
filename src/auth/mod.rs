//! Who is calling and what they may do: the API key format and hashing, the verification
//! cache, the admin token, `authenticate` (credential → caller with its partner), the
//! read-access rule, and the rules for creating and rotating keys. No HTTP here: the
//! adapters in `http/` hand over header values and map `AuthError` to a status.

mod access;
mod admin;
mod api_key;
mod authenticate;
mod credential;
mod error;
mod key_rules;
mod verifier;

pub use access::{ReadTarget, read_target};
pub use admin::{AdminToken, generated_admin_token};
pub use api_key::{GeneratedKey, PreCheck, PresentedKey, generate};
pub use authenticate::{Authenticator, Caller, KeyHolder};
pub use credential::{CredentialSources, PresentedCredential};
pub use error::AuthError;
pub use key_rules::{CheckedKeyDraft, KeyDraft, RotateRequest, Rotation, rotate};
pub use verifier::KeyVerifier;

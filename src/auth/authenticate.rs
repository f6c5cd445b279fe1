//! From a presented credential to the caller it proves: the operator (admin token) or a
//! usable API key of an active partner (and active pinned subsystem), with that partner
//! looked up once for the whole request. Scope checks for each kind of endpoint live
//! here too, so every entry point, today's and those to come, shares them.

use std::sync::Arc;

use crate::auth::{AdminToken, AuthError, KeyVerifier, PresentedCredential, PresentedKey};
use crate::model::{ApiKey, Partner, Scope};
use crate::tenants::Directory;

/// Who is calling, once authenticated.
#[derive(Clone)]
pub enum Caller {
    Admin,
    Key(KeyHolder),
}

/// A partner's API key, with its (active) partner.
#[derive(Clone)]
pub struct KeyHolder {
    pub key: Arc<ApiKey>,
    pub partner: Arc<Partner>,
}

pub struct Authenticator {
    admin_token: AdminToken,
    verifier: Arc<KeyVerifier>,
    directory: Arc<Directory>,
}

impl Authenticator {
    pub fn new(
        admin_token: AdminToken,
        verifier: Arc<KeyVerifier>,
        directory: Arc<Directory>,
    ) -> Authenticator {
        Authenticator {
            admin_token,
            verifier,
            directory,
        }
    }

    pub async fn authenticate(
        &self,
        credential: Option<PresentedCredential>,
    ) -> Result<Caller, AuthError> {
        let Some(credential) = credential.filter(|credential| !credential.token.is_empty()) else {
            return Err(AuthError::Missing);
        };
        if !PresentedKey::looks_like_key(&credential.token) {
            return if credential.bearer && self.admin_token.matches(&credential.token) {
                Ok(Caller::Admin)
            } else {
                Err(AuthError::Rejected("the credentials are not valid"))
            };
        }
        let key = self
            .verifier
            .verify(&credential.token, credential.client)
            .await?;
        let partner = self
            .directory
            .partner(key.partner_id)
            .await?
            .filter(|partner| partner.is_active())
            .ok_or(AuthError::Rejected("the API key's partner is inactive"))?;
        if let Some(pinned) = key.subsystem_id {
            let subsystem = self.directory.subsystem(pinned).await?;
            if !subsystem.is_some_and(|subsystem| subsystem.is_active()) {
                return Err(AuthError::Rejected("the API key's subsystem is inactive"));
            }
        }
        Ok(Caller::Key(KeyHolder { key, partner }))
    }

    /// Management endpoints: the admin token, nothing else.
    pub async fn admin(&self, credential: Option<PresentedCredential>) -> Result<(), AuthError> {
        refuse_url_key(credential.as_ref())?;
        match self.authenticate(credential).await? {
            Caller::Admin => Ok(()),
            Caller::Key(_) => Err(AuthError::Forbidden(
                "this endpoint needs the admin token, not an API key",
            )),
        }
    }

    /// Read endpoints: the admin token, or an API key with the `read` scope.
    pub async fn reader(
        &self,
        credential: Option<PresentedCredential>,
    ) -> Result<Caller, AuthError> {
        refuse_url_key(credential.as_ref())?;
        let caller = self.authenticate(credential).await?;
        if let Caller::Key(holder) = &caller
            && !holder.key.has_scope(Scope::Read)
        {
            return Err(AuthError::Forbidden("this API key lacks the 'read' scope"));
        }
        Ok(caller)
    }

    /// Ingest endpoints: an API key with the `ingest` scope.
    pub async fn sender(
        &self,
        credential: Option<PresentedCredential>,
    ) -> Result<KeyHolder, AuthError> {
        match self.authenticate(credential).await? {
            Caller::Key(holder) if holder.key.has_scope(Scope::Ingest) => Ok(holder),
            Caller::Key(_) => Err(AuthError::Forbidden(
                "this API key lacks the 'ingest' scope",
            )),
            Caller::Admin => Err(AuthError::Forbidden(
                "events are sent with a partner's API key (scope 'ingest'), not the admin token",
            )),
        }
    }
}

/// Only ingest endpoints take `?apiKey=` (for `sendBeacon`): a read key in a URL would
/// be written to every proxy's and server's access log. Refused before it is checked,
/// so the answer does not depend on whether the key is genuine.
fn refuse_url_key(credential: Option<&PresentedCredential>) -> Result<(), AuthError> {
    match credential {
        Some(credential) if credential.url_key => Err(AuthError::Rejected(
            "API keys in the URL (?apiKey=) are accepted by the ingest endpoints only; send this key in the X-API-Key header",
        )),
        _ => Ok(()),
    }
}

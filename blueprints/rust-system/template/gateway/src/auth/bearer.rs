//! Bearer tokens (RFC 6750) and the claims the gateway reads from them, shared by the
//! token schemes (`jwt`, `oidc`).

use axum::http::header::{self, HeaderMap};
use serde::Deserialize;

use super::{Identity, Refusal};

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, Refusal> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Refusal::Missing);
    };
    value
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| Refusal::Invalid("expected `Authorization: Bearer <token>`".to_owned()))
}

/// The claims the gateway reads; `exp`, `nbf`, `iss` and `aud` are checked by
/// [`jsonwebtoken::decode`].
#[derive(Debug, Deserialize)]
pub(crate) struct Claims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scope: String,
}

impl Claims {
    /// The subject (`sub`), with the `roles` claim (an array) and the `scope` claim
    /// (space-separated) together as roles.
    pub(crate) fn into_identity(self) -> Identity {
        let roles = self
            .roles
            .into_iter()
            .chain(self.scope.split_whitespace().map(str::to_owned))
            .collect();
        Identity {
            subject: self.sub,
            roles,
        }
    }
}

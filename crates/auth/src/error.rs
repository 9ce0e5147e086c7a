//! Authentication errors, their RFC 6750 `WWW-Authenticate` challenge and their problem details.

use microframework_core::{ErrorKind, ProblemDetails};

/// Why a request could not be authenticated.
///
/// The [`Display`](std::fmt::Display) messages are safe to show to clients: they never contain
/// key material, secrets or the token itself. Use [`AuthError::to_problem`] for the HTTP body and
/// [`AuthError::www_authenticate`] for the `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No bearer token was presented.
    #[error("no bearer token was provided")]
    MissingToken,
    /// The token (or the `Authorization` header) is not a well-formed JWT.
    #[error("the token is malformed: {0}")]
    Malformed(String),
    /// The token's `exp` is in the past (beyond the configured leeway).
    #[error("the token has expired")]
    Expired,
    /// The token's `nbf` is in the future (beyond the configured leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The signature does not match the token.
    #[error("the token signature is invalid")]
    InvalidSignature,
    /// The `iss` claim is missing or not the configured issuer.
    #[error("the token issuer is not accepted")]
    InvalidIssuer,
    /// The `aud` claim is missing or names none of the configured audiences.
    #[error("the token audience is not accepted")]
    InvalidAudience,
    /// The header's `alg` is not allowed (including `none`), or does not fit the key.
    #[error("the token algorithm `{0}` is not allowed")]
    AlgorithmNotAllowed(String),
    /// No configured or published key matches the token (its `kid`, if it has one).
    #[error("{}", unknown_key_message(.0.as_deref()))]
    UnknownKey(Option<String>),
    /// The signing keys (JWKS) could not be loaded; the token cannot be checked right now.
    #[error("the signing keys are unavailable: {0}")]
    KeysUnavailable(String),
    /// The JWT configuration or a key is invalid.
    #[error("invalid JWT configuration: {0}")]
    InvalidConfig(String),
    /// A token could not be signed (see [`JwtSigner`](crate::JwtSigner)).
    #[error("the token could not be signed: {0}")]
    Signing(String),
}

fn unknown_key_message(kid: Option<&str>) -> String {
    match kid {
        Some(kid) => format!("the token signing key `{}` is unknown", client_safe(kid, 64)),
        None => "no known signing key matches the token".to_owned(),
    }
}

/// Keeps printable ASCII without quotes or backslashes, truncated to `max` characters, so that a
/// value taken from a token can be echoed in a message or a header parameter.
pub(crate) fn client_safe(s: &str, max: usize) -> String {
    let mut out: String =
        s.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').filter(|c| *c != '"' && *c != '\\').take(max).collect();
    if s.chars().count() > max {
        out.push_str("...");
    }
    out
}

impl AuthError {
    /// The protocol-neutral kind: [`ErrorKind::Unauthenticated`] for token problems,
    /// [`ErrorKind::Unavailable`] when keys cannot be loaded, [`ErrorKind::Internal`] for
    /// configuration and signing errors.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::KeysUnavailable(_) => ErrorKind::Unavailable,
            Self::InvalidConfig(_) | Self::Signing(_) => ErrorKind::Internal,
            _ => ErrorKind::Unauthenticated,
        }
    }

    /// The HTTP status code: 401, or 503 for [`AuthError::KeysUnavailable`] (500 for
    /// configuration and signing errors).
    pub fn status(&self) -> u16 {
        self.kind().http_status()
    }

    /// The RFC 6750 `WWW-Authenticate` header value.
    ///
    /// `Bearer` alone when no token was presented (or the failure is on the server side),
    /// otherwise `Bearer error="invalid_token", error_description="..."`.
    ///
    /// ```
    /// use microframework_auth::AuthError;
    /// assert_eq!(AuthError::MissingToken.www_authenticate(), "Bearer");
    /// assert_eq!(
    ///     AuthError::Expired.www_authenticate(),
    ///     r#"Bearer error="invalid_token", error_description="the token has expired""#
    /// );
    /// ```
    pub fn www_authenticate(&self) -> String {
        match self {
            Self::MissingToken | Self::KeysUnavailable(_) | Self::InvalidConfig(_) | Self::Signing(_) => {
                "Bearer".to_owned()
            }
            other => {
                format!(r#"Bearer error="invalid_token", error_description="{}""#, client_safe(&other.to_string(), 200))
            }
        }
    }

    /// The RFC 7807 problem details for this error: `401 unauthenticated`, `503 unavailable` for
    /// [`AuthError::KeysUnavailable`] (whose internal reason is not shown) and `500 internal` for
    /// configuration and signing errors (likewise hidden).
    pub fn to_problem(&self) -> ProblemDetails {
        let detail = match self {
            Self::KeysUnavailable(_) => "The token cannot be verified right now; try again later.".to_owned(),
            Self::InvalidConfig(_) | Self::Signing(_) => "An unexpected error occurred.".to_owned(),
            other => {
                let mut s = other.to_string();
                if let Some(first) = s.get(..1) {
                    let upper = first.to_ascii_uppercase();
                    s.replace_range(..1, &upper);
                }
                s.push('.');
                s
            }
        };
        ProblemDetails::new(self.kind(), detail)
    }
}

impl From<AuthError> for microframework_core::Error {
    fn from(err: AuthError) -> Self {
        let problem = err.to_problem();
        let message = problem.detail.unwrap_or_default();
        microframework_core::Error::new(err.kind(), message).with_source(err)
    }
}

/// Maps a `jsonwebtoken` error to a client-safe [`AuthError`].
pub(crate) fn from_jwt_error(err: &jsonwebtoken::errors::Error, alg: &str) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match err.kind() {
        K::InvalidSignature => AuthError::InvalidSignature,
        K::ExpiredSignature => AuthError::Expired,
        K::ImmatureSignature => AuthError::NotYetValid,
        K::InvalidIssuer => AuthError::InvalidIssuer,
        K::InvalidAudience => AuthError::InvalidAudience,
        K::MissingRequiredClaim(claim) => match claim.as_str() {
            "iss" => AuthError::InvalidIssuer,
            "aud" => AuthError::InvalidAudience,
            other => AuthError::Malformed(format!("the `{}` claim is required", client_safe(other, 16))),
        },
        K::InvalidClaimFormat(claim) => {
            AuthError::Malformed(format!("the `{}` claim is not a valid date", client_safe(claim, 16)))
        }
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::UnsupportedAlgorithm | K::MissingAlgorithm => {
            AuthError::AlgorithmNotAllowed(client_safe(alg, 32))
        }
        K::Base64(_) => AuthError::Malformed("invalid base64url encoding".to_owned()),
        K::Json(_) => AuthError::Malformed("the claims are not a valid JSON object of the expected shape".to_owned()),
        K::Utf8(_) => AuthError::Malformed("invalid UTF-8".to_owned()),
        K::InvalidToken => AuthError::Malformed("not a JWT".to_owned()),
        // A key that cannot be used (a bad RSA/EC key in the JWKS, a key of another family):
        // the token cannot be proven genuine.
        _ => {
            tracing::warn!(error = %err, "JWT verification failed on the key side");
            AuthError::InvalidSignature
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_token_challenge_is_plain_bearer() {
        assert_eq!(AuthError::MissingToken.www_authenticate(), "Bearer");
        assert_eq!(AuthError::KeysUnavailable("x".into()).www_authenticate(), "Bearer");
    }

    #[test]
    fn invalid_token_challenge_has_error_and_description() {
        assert_eq!(
            AuthError::Expired.www_authenticate(),
            r#"Bearer error="invalid_token", error_description="the token has expired""#
        );
    }

    #[test]
    fn challenge_never_contains_quotes_from_input() {
        let e = AuthError::UnknownKey(Some("a\"b\\c\n".into()));
        let h = e.www_authenticate();
        assert_eq!(h.matches('"').count(), 4, "{h}");
        assert!(!h.contains('\\') && !h.contains('\n'));
    }

    #[test]
    fn long_kid_is_truncated() {
        let e = AuthError::UnknownKey(Some("k".repeat(1000)));
        assert!(e.to_string().len() < 120);
    }

    #[test]
    fn problems_have_the_right_status() {
        assert_eq!(AuthError::Expired.to_problem().status, 401);
        assert_eq!(AuthError::Expired.to_problem().code, "unauthenticated");
        assert_eq!(AuthError::Expired.to_problem().detail.as_deref(), Some("The token has expired."));
        let p = AuthError::KeysUnavailable("connect to http://idp/secret-path failed".into()).to_problem();
        assert_eq!(p.status, 503);
        assert_eq!(p.code, "unavailable");
        assert!(!p.detail.unwrap_or_default().contains("idp"));
        let p = AuthError::InvalidConfig("bad key".into()).to_problem();
        assert_eq!(p.status, 500);
        assert!(!p.detail.unwrap_or_default().contains("bad key"));
    }

    #[test]
    fn converts_to_core_error() {
        let e: microframework_core::Error = AuthError::InvalidSignature.into();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        assert_eq!(e.message(), "The token signature is invalid.");
    }
}

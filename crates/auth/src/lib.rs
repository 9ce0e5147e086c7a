//! Authentication for MicroFramework services: JWT bearer tokens signed with a shared secret
//! (`HS256`/`HS384`/`HS512`), a public key (`RS*`, `PS*`, `ES256`/`ES384`, `EdDSA`) or the keys
//! of a JWKS endpoint (fetched, cached by `kid`, refreshed in the background).
//!
//! - [`AuthConfig`] / [`JwtConfig`]: the `auth` configuration section, with validation that
//!   reports every problem with its key.
//! - [`JwtVerifier`]: verifies a token and returns its [`Claims`]. Security rules: `alg: none` is
//!   never accepted, the token algorithm must be allowed **and** fit the key (no algorithm
//!   confusion), `exp` is required, `nbf`/`exp` honour the leeway, `iss`/`aud` are checked when
//!   configured, unknown `kid`s refetch the JWKS at most once every 30 seconds.
//! - [`bearer_token`]: extracts the token from an `Authorization` header value.
//! - [`AuthError`]: why a token was rejected, with its RFC 6750 `WWW-Authenticate` challenge and
//!   RFC 7807 problem details (401, or 503 when the keys cannot be loaded).
//! - [`JwtSigner`]: issues tokens (tests, development tooling, token-issuing services).
//!
//! The HTTP layer (`microframework-http`) runs the verifier on each request and puts the
//! [`Claims`] in the request extensions; handlers take them as an extractor (feature `axum`).
//!
//! # Features
//!
//! | Feature | Default | What it adds |
//! |---------|---------|--------------|
//! | `axum`  | no      | [`Claims`] and `Option<Claims>` as axum extractors, `AuthRejection` (problem+json with `WWW-Authenticate`), `require_role` and `require_scope` |
//!
//! # Example
//!
//! ```
//! use microframework_auth::{bearer_token, AuthError, JwtConfig, JwtSigner, JwtVerifier};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), AuthError> {
//! let secret = "an example secret of at least 32 bytes!";
//! let cfg = JwtConfig {
//!     secret: Some(secret.into()),
//!     issuer: Some("https://auth.example.com".into()),
//!     ..JwtConfig::default()
//! };
//! let verifier = JwtVerifier::from_config(&cfg).await?;
//!
//! let token = JwtSigner::hs256(secret.as_bytes()).sign(&serde_json::json!({
//!     "sub": "user-42",
//!     "iss": "https://auth.example.com",
//!     "exp": 4_000_000_000u64,
//!     "roles": ["admin"],
//! }))?;
//!
//! let header = format!("Bearer {token}");
//! let claims = verifier.verify(bearer_token(&header)?).await?;
//! assert_eq!(claims.subject(), Some("user-42"));
//! assert!(claims.has_role("admin"));
//!
//! let err = verifier.verify("not.a.token").await.unwrap_err();
//! assert_eq!(err.to_problem().status, 401);
//! # Ok(())
//! # }
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod claims;
pub mod config;
pub mod error;
#[cfg(feature = "axum")]
pub mod extract;
#[cfg(feature = "tower")]
pub mod gate;
pub mod shared;
pub mod signer;
pub mod verifier;

mod jwks;
mod keys;

pub use claims::Claims;
pub use config::{AuthConfig, JwtConfig};
pub use error::AuthError;
#[cfg(feature = "axum")]
pub use extract::{AuthRejection, require_role, require_scope};
pub use shared::SharedJwt;
pub use signer::JwtSigner;
pub use verifier::{JwtVerifier, bearer_token};

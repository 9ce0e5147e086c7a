//! Token signing, for tests, development tooling and services that issue tokens.

use std::fmt;

use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey, Header};
use serde::Serialize;

use crate::error::{AuthError, client_safe};
use crate::keys::{self, alg_name};

/// Signs JWTs.
///
/// ```
/// use microframework_auth::JwtSigner;
/// let signer = JwtSigner::hs256(b"0123456789abcdef0123456789abcdef").with_kid("k1");
/// let token = signer.sign(&serde_json::json!({"sub": "user-1", "exp": 4_000_000_000u64})).unwrap();
/// assert_eq!(token.split('.').count(), 3);
/// ```
///
/// The claims are signed as given: include `exp` (verifiers require it), and `iss`/`aud` when
/// the verifier checks them.
#[derive(Clone)]
pub struct JwtSigner {
    alg: Algorithm,
    key: EncodingKey,
    kid: Option<String>,
}

impl fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSigner").field("alg", &alg_name(self.alg)).field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl JwtSigner {
    /// An `HS256` signer with a shared secret (use at least 32 random bytes).
    pub fn hs256(secret: &[u8]) -> Self {
        Self { alg: Algorithm::HS256, key: EncodingKey::from_secret(secret), kid: None }
    }

    /// An HMAC signer (`HS256`, `HS384` or `HS512`) with a shared secret.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidConfig`] for an unknown or non-HMAC algorithm.
    pub fn hmac(alg: &str, secret: &[u8]) -> Result<Self, AuthError> {
        let alg = parse(alg)?;
        if alg.family() != AlgorithmFamily::Hmac {
            return Err(AuthError::InvalidConfig(format!("`{}` is not an HMAC algorithm", alg_name(alg))));
        }
        Ok(Self { alg, key: EncodingKey::from_secret(secret), kid: None })
    }

    /// A signer with a PEM private key (PKCS#8 `PRIVATE KEY`, or PKCS#1 `RSA PRIVATE KEY`) for
    /// `alg`: `RS256`/`RS384`/`RS512`/`PS256`/`PS384`/`PS512` (RSA), `ES256` (P-256), `ES384`
    /// (P-384) or `EdDSA` (Ed25519).
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidConfig`] for an unknown or HMAC algorithm, or a key that is not a
    /// private key of the algorithm's type. The message never contains the key.
    pub fn from_pem(alg: &str, private_key_pem: &[u8]) -> Result<Self, AuthError> {
        let alg = parse(alg)?;
        let name = alg_name(alg);
        let key = match alg.family() {
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(private_key_pem),
            AlgorithmFamily::Ec => EncodingKey::from_ec_pem(private_key_pem),
            AlgorithmFamily::Ed => EncodingKey::from_ed_pem(private_key_pem),
            AlgorithmFamily::Hmac => {
                return Err(AuthError::InvalidConfig(format!("`{name}` uses a shared secret: use `JwtSigner::hmac`")));
            }
        }
        .map_err(|_| AuthError::InvalidConfig(format!("the private key is not a PEM-encoded {name} private key")))?;
        // The PEM decoders only check the structure: sign once so a wrong key (or an EC key of
        // another curve) fails here rather than at the first token.
        jsonwebtoken::crypto::sign(b"probe", &key, alg)
            .map_err(|_| AuthError::InvalidConfig(format!("the private key cannot sign with `{name}`")))?;
        Ok(Self { alg, key, kid: None })
    }

    /// Sets the `kid` header of the tokens.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm name (`HS256`, `RS256`, ...).
    pub fn algorithm(&self) -> &'static str {
        alg_name(self.alg)
    }

    /// The `kid` header, if set.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Signs `claims` (any serialisable value, such as [`Claims`](crate::Claims) or a
    /// `serde_json::Value`) into a compact JWT.
    ///
    /// # Errors
    ///
    /// [`AuthError::Signing`] when the claims do not serialise to a JSON object or signing fails.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, AuthError> {
        let value = serde_json::to_value(claims)
            .map_err(|e| AuthError::Signing(format!("the claims do not serialise: {e}")))?;
        if !value.is_object() {
            return Err(AuthError::Signing("the claims must serialise to a JSON object".to_owned()));
        }
        let mut header = Header::new(self.alg);
        header.kid.clone_from(&self.kid);
        jsonwebtoken::encode(&header, &value, &self.key).map_err(|e| AuthError::Signing(e.to_string()))
    }
}

fn parse(alg: &str) -> Result<Algorithm, AuthError> {
    keys::parse_alg(alg)
        .ok_or_else(|| AuthError::InvalidConfig(format!("unknown algorithm `{}`", client_safe(alg, 32))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_algorithms_and_keys() {
        assert!(matches!(JwtSigner::from_pem("none", b""), Err(AuthError::InvalidConfig(_))));
        assert!(matches!(JwtSigner::from_pem("HS256", b""), Err(AuthError::InvalidConfig(_))));
        assert!(matches!(JwtSigner::from_pem("RS256", b"garbage"), Err(AuthError::InvalidConfig(_))));
        assert!(matches!(JwtSigner::hmac("RS256", b"x"), Err(AuthError::InvalidConfig(_))));
        assert_eq!(JwtSigner::hmac("HS512", b"x").unwrap().algorithm(), "HS512");
    }

    #[test]
    fn claims_must_be_an_object() {
        let s = JwtSigner::hs256(b"0123456789abcdef0123456789abcdef");
        assert!(matches!(s.sign(&5), Err(AuthError::Signing(_))));
        assert!(s.sign(&serde_json::json!({"exp": 1})).is_ok());
    }

    #[test]
    fn debug_hides_the_key() {
        let s = JwtSigner::hs256(b"supersecretsupersecretsupersecret").with_kid("k");
        let d = format!("{s:?}");
        assert!(!d.contains("supersecret"));
        assert!(d.contains("HS256") && d.contains('k'));
    }
}

//! Fetching and caching a JWKS (JSON Web Key Set) document.
// Without the `jwks` feature nothing fetches a key set: the parsing below stays compiled (the
// verifier's types name it) but is never called.
#![cfg_attr(not(feature = "jwks"), allow(dead_code))]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use tokio::time::Instant;

use crate::error::AuthError;

/// How often, at most, an unknown `kid` (or missing keys) triggers an on-demand refetch.
pub(crate) const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Why a `jwks_url` is refused by a build without the `jwks` feature.
pub(crate) const NO_JWKS: &str = "this build has no JWKS support (keys from a URL): enable the `jwks` feature of the \
     `microframework` dependency in Cargo.toml, or configure `secret` or `public_key`";

/// The largest JWKS document accepted, in bytes.
#[cfg(feature = "jwks")]
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// One usable verification key of a JWKS.
#[derive(Clone)]
pub(crate) struct JwksKey {
    pub(crate) kid: Option<String>,
    /// The algorithm the key declares (`alg`), if any.
    pub(crate) alg: Option<Algorithm>,
    pub(crate) family: AlgorithmFamily,
    pub(crate) curve: Option<EllipticCurve>,
    pub(crate) key: DecodingKey,
}

/// A loaded key set.
pub(crate) struct KeySet {
    pub(crate) keys: Vec<JwksKey>,
    by_kid: HashMap<String, usize>,
}

impl KeySet {
    /// Builds a key set from the `keys` of a JWKS document, skipping unusable keys: encryption
    /// keys, symmetric (`oct`) keys, unknown key types and keys that do not parse.
    pub(crate) fn from_jwks_json(body: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let raw: RawSet =
            serde_json::from_slice(body).map_err(|e| format!("the JWKS is not a JSON object with `keys`: {e}"))?;
        let total = raw.keys.len();
        let mut keys = Vec::new();
        let mut by_kid = HashMap::new();
        for value in raw.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            let Some(key) = usable_key(&jwk) else {
                tracing::debug!(kid = ?jwk.common.key_id, "skipping an unusable JWKS key");
                continue;
            };
            if let Some(kid) = &key.kid {
                if by_kid.contains_key(kid) {
                    tracing::warn!(kid = %kid, "the JWKS has several keys with this kid; using the first");
                    continue;
                }
                by_kid.insert(kid.clone(), keys.len());
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(format!("the JWKS has no usable signing key ({total} keys published)"));
        }
        Ok(Self { keys, by_kid })
    }

    /// The key with this `kid`.
    pub(crate) fn get(&self, kid: &str) -> Option<&JwksKey> {
        self.by_kid.get(kid).and_then(|&i| self.keys.get(i))
    }
}

fn usable_key(jwk: &Jwk) -> Option<JwksKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))) {
        return None;
    }
    let alg = match jwk.common.key_algorithm {
        None => None,
        // A declared algorithm we cannot use (RSA-OAEP, unknown...): the key is not for us.
        Some(a) => Some(Algorithm::try_from(a).ok()?),
    };
    let (family, curve) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (AlgorithmFamily::Rsa, None),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 | EllipticCurve::P384 => (AlgorithmFamily::Ec, Some(p.curve.clone())),
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => (AlgorithmFamily::Ed, None),
        // Symmetric keys have no business in a published key set; never use them.
        _ => return None,
    };
    if alg.is_some_and(|a| a.family() != family) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(JwksKey { kid: jwk.common.key_id.clone(), alg, family, curve, key })
}

/// The cached key set of one JWKS URL.
pub(crate) struct JwksCache {
    url: String,
    #[cfg(feature = "jwks")]
    client: reqwest::Client,
    keys: ArcSwapOption<KeySet>,
    /// Serialises fetches; holds the time of the last on-demand refetch.
    fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl JwksCache {
    #[cfg(not(feature = "jwks"))]
    pub(crate) fn new(_url: &str, _timeout: Duration) -> Result<Self, AuthError> {
        Err(AuthError::InvalidConfig(format!("`jwt.jwks_url`: {NO_JWKS}")))
    }

    #[cfg(feature = "jwks")]
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Self, AuthError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("microframework-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AuthError::InvalidConfig(format!("cannot build the JWKS HTTP client: {e}")))?;
        Ok(Self { url: url.to_owned(), client, keys: ArcSwapOption::empty(), fetch: tokio::sync::Mutex::new(None) })
    }

    /// The current key set, if one has been loaded.
    pub(crate) fn current(&self) -> Option<Arc<KeySet>> {
        self.keys.load_full()
    }

    /// Fetches the JWKS now; on failure the previous keys stay in place.
    pub(crate) async fn refresh(&self) -> Result<(), AuthError> {
        let _guard = self.fetch.lock().await;
        self.fetch_and_store().await
    }

    /// Refetches for an unknown `kid` (or missing keys), at most once per
    /// [`MIN_REFETCH_INTERVAL`]. Concurrent callers wait for the fetch in flight instead of
    /// starting their own. Returns whether a fetch happened (successful or not).
    pub(crate) async fn refetch_on_demand(&self) -> Result<bool, AuthError> {
        let mut last = self.fetch.lock().await;
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < MIN_REFETCH_INTERVAL) {
            return Ok(false);
        }
        *last = Some(now);
        self.fetch_and_store().await.map(|()| true)
    }

    async fn fetch_and_store(&self) -> Result<(), AuthError> {
        match self.fetch_once().await {
            Ok(set) => {
                tracing::debug!(url = %self.url, keys = set.keys.len(), "loaded the JWKS");
                self.keys.store(Some(Arc::new(set)));
                Ok(())
            }
            Err(reason) => {
                let kept = if self.keys.load().is_some() { "keeping the previous keys" } else { "no keys loaded yet" };
                tracing::warn!(url = %self.url, error = %reason, "JWKS fetch failed; {kept}");
                Err(AuthError::KeysUnavailable(reason))
            }
        }
    }

    #[cfg(not(feature = "jwks"))]
    async fn fetch_once(&self) -> Result<KeySet, String> {
        Err(NO_JWKS.to_owned())
    }

    #[cfg(feature = "jwks")]
    async fn fetch_once(&self) -> Result<KeySet, String> {
        let mut resp = self
            .client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/jwk-set+json, application/json")
            .send()
            .await
            .map_err(|e| format!("JWKS request failed: {}", error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("JWKS endpoint answered {status}"));
        }
        if resp.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
            return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            resp.chunk().await.map_err(|e| format!("reading the JWKS failed: {}", error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::from_jwks_json(&body)
    }
}

#[cfg(feature = "jwks")]
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // A valid P-256 public point (from RFC 7515 appendix A.3).
    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRjGPv5odY0VPwTf1cvmbuFEgCyg88bbD3vdqNU";

    #[test]
    fn skips_unusable_keys() {
        let body = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": "enc", "use": "enc"},
            {"kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": "oaep", "alg": "RSA-OAEP"},
            {"kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": "mismatch", "alg": "RS256"},
            {"kty": "weird", "kid": "w"},
            "not an object",
            {"kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": "good", "alg": "ES256", "use": "sig"}
        ]});
        let set = KeySet::from_jwks_json(body.to_string().as_bytes()).unwrap();
        assert_eq!(set.keys.len(), 1);
        let k = set.get("good").unwrap();
        assert_eq!(k.alg, Some(Algorithm::ES256));
        assert_eq!(k.family, AlgorithmFamily::Ec);
        assert!(set.get("hmac").is_none());
    }

    #[test]
    fn empty_or_invalid_sets_are_errors() {
        assert!(KeySet::from_jwks_json(br#"{"keys":[]}"#).is_err());
        assert!(KeySet::from_jwks_json(b"<html>").is_err());
        assert!(KeySet::from_jwks_json(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
    }

    #[test]
    fn duplicate_kids_keep_the_first() {
        let body = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": "a", "alg": "ES256"},
            {"kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": "a", "alg": "ES384"}
        ]});
        let set = KeySet::from_jwks_json(body.to_string().as_bytes()).unwrap();
        assert_eq!(set.get("a").unwrap().alg, Some(Algorithm::ES256));
    }
}

//! Token verification.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use microframework_core::Validation;

use crate::claims::Claims;
use crate::config::{JwtConfig, SourceKind};
use crate::error::{AuthError, client_safe, from_jwt_error};
use crate::jwks::{JwksCache, JwksKey};
use crate::keys::{self, PublicKey, alg_name, curve_fits};

/// The longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Extracts the token from an `Authorization` header value of the form `Bearer <token>`.
///
/// The scheme is case-insensitive and surrounding whitespace is ignored. An empty token, a token
/// containing whitespace, or another scheme is rejected.
///
/// ```
/// use microframework_auth::{bearer_token, AuthError};
/// assert_eq!(bearer_token("Bearer abc.def.ghi"), Ok("abc.def.ghi"));
/// assert_eq!(bearer_token("  bearer   abc  "), Ok("abc"));
/// assert!(matches!(bearer_token("Basic dXNlcjpwdw=="), Err(AuthError::Malformed(_))));
/// assert!(matches!(bearer_token("Bearer "), Err(AuthError::MissingToken)));
/// ```
pub fn bearer_token(header_value: &str) -> Result<&str, AuthError> {
    let value = header_value.trim();
    if value.is_empty() {
        return Err(AuthError::MissingToken);
    }
    let (scheme, rest) = match value.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((scheme, rest)) => (scheme, rest.trim()),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed("the Authorization header must use the Bearer scheme".to_owned()));
    }
    if rest.is_empty() {
        return Err(AuthError::MissingToken);
    }
    if rest.chars().any(char::is_whitespace) {
        return Err(AuthError::Malformed("the bearer token must not contain whitespace".to_owned()));
    }
    Ok(rest)
}

/// Verifies bearer tokens against the keys of a [`JwtConfig`].
///
/// Cheap to clone: clones share the keys, the JWKS cache and its background refresh task, which
/// stops when the last clone is dropped.
///
/// What [`verify`](Self::verify) enforces:
///
/// - the header is decoded first; `alg: none` and unknown algorithms are rejected;
/// - the header `alg` must be allowed ([`JwtConfig::algorithms`], or the ones derived from the
///   key) **and** belong to the key's family, so an `HS256` token is never checked against a
///   public key used as an HMAC secret;
/// - the signature is checked before any claim;
/// - `exp` is required; `exp` and `nbf` are checked with the configured leeway; `iss` and `aud`
///   are required and checked when configured;
/// - with a JWKS, the key is chosen by `kid`; an unknown `kid` triggers a refetch at most once
///   every 30 seconds; a token without `kid` is tried against the keys that fit its algorithm.
///   Keys referenced from the token itself (`jku`, `jwk`, `x5u` headers) are never used.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    source: KeySource,
    /// The configured algorithms; `None` derives them from the key.
    allowed: Option<Vec<Algorithm>>,
    validation: jsonwebtoken::Validation,
    refresh_task: Option<tokio::task::AbortHandle>,
}

enum KeySource {
    Secret(DecodingKey),
    Public(PublicKey),
    Jwks(Arc<JwksCache>),
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.refresh_task.take() {
            task.abort();
        }
    }
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.inner.source {
            KeySource::Secret(_) => "secret",
            KeySource::Public(_) => "public_key",
            KeySource::Jwks(_) => "jwks",
        };
        let allowed: Option<Vec<&str>> = self.inner.allowed.as_ref().map(|a| a.iter().map(|a| alg_name(*a)).collect());
        f.debug_struct("JwtVerifier")
            .field("source", &source)
            .field("algorithms", &allowed)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

/// The parts of a token header the verifier needs.
struct TokenHeader {
    alg: Algorithm,
    kid: Option<String>,
}

impl JwtVerifier {
    /// Builds a verifier: checks the configuration, parses the secret or the public key, and for
    /// a JWKS performs a first fetch.
    ///
    /// An unreachable JWKS does not fail start-up: a warning is logged, [`is_ready`](Self::is_ready)
    /// stays `false` and the keys are loaded by the background refresh (every
    /// [`JwtConfig::jwks_refresh_interval`]), by [`refresh`](Self::refresh), or on demand by
    /// [`verify`](Self::verify). The background task needs a Tokio runtime; without one, only
    /// on-demand loading is used.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidConfig`] listing every configuration problem (even when
    /// [`JwtConfig::enabled`] is `false`, a key source is required here).
    pub async fn from_config(cfg: &JwtConfig) -> Result<Self, AuthError> {
        let mut v = Validation::new("jwt");
        cfg.check(&mut v, true);
        if !v.is_ok() {
            let list: Vec<String> = v.into_problems().into_iter().map(|(k, m)| format!("`{k}`: {m}")).collect();
            return Err(AuthError::InvalidConfig(list.join("; ")));
        }
        let allowed = if cfg.algorithms.is_empty() {
            None
        } else {
            Some(cfg.algorithms.iter().filter_map(|a| keys::parse_alg(a)).collect::<Vec<_>>())
        };

        let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
        validation.leeway = cfg.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(iss) = &cfg.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        if cfg.audience.is_empty() {
            validation.validate_aud = false;
            if cfg.allow_any_audience && cfg.secret.is_none() {
                tracing::warn!(
                    "auth.jwt.allow_any_audience is on: tokens the identity provider minted for any other service \
                     are accepted here; set auth.jwt.audience to this service's audience"
                );
            }
        } else {
            validation.set_audience(&cfg.audience);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);

        let mut refresh_task = None;
        let source = match cfg.sources().first() {
            Some(SourceKind::Secret) => {
                KeySource::Secret(DecodingKey::from_secret(cfg.secret.as_deref().unwrap_or_default().as_bytes()))
            }
            Some(SourceKind::PublicKey) => {
                let pem = keys::load_pem(cfg.public_key.as_deref().unwrap_or_default())
                    .map_err(|e| AuthError::InvalidConfig(format!("`jwt.public_key`: {e}")))?;
                let key = keys::parse_public_key(&pem)
                    .map_err(|e| AuthError::InvalidConfig(format!("`jwt.public_key`: {e}")))?;
                KeySource::Public(key)
            }
            Some(SourceKind::Jwks) => {
                let url = cfg.jwks_url.as_deref().unwrap_or_default();
                let cache = Arc::new(JwksCache::new(url, cfg.jwks_timeout)?);
                if let Err(e) = cache.refresh().await {
                    tracing::warn!(url, error = %e, "the JWKS is unreachable at start-up; tokens are rejected until it loads");
                }
                refresh_task = spawn_refresh(Arc::downgrade(&cache), cfg.jwks_refresh_interval);
                KeySource::Jwks(cache)
            }
            None => {
                return Err(AuthError::InvalidConfig("no key source configured".to_owned()));
            }
        };
        Ok(Self { inner: Arc::new(Inner { source, allowed, validation, refresh_task }) })
    }

    /// Whether the verifier can check tokens: `false` while a JWKS is configured but no key set
    /// has been loaded yet; always `true` for a secret or a public key.
    pub fn is_ready(&self) -> bool {
        match &self.inner.source {
            KeySource::Jwks(cache) => cache.current().is_some(),
            _ => true,
        }
    }

    /// Refetches the JWKS now (not rate-limited). A no-op without a JWKS.
    ///
    /// # Errors
    ///
    /// [`AuthError::KeysUnavailable`] when the fetch fails; the previous keys stay in use.
    pub async fn refresh(&self) -> Result<(), AuthError> {
        match &self.inner.source {
            KeySource::Jwks(cache) => cache.refresh().await,
            _ => Ok(()),
        }
    }

    /// Makes sure keys are loaded: a no-op once they are (always, for a secret or a public key);
    /// otherwise fetches the JWKS, at most once per 30 s whoever asks (this is what a readiness
    /// probe calls, so probes cannot hammer the identity provider).
    ///
    /// # Errors
    ///
    /// [`AuthError::KeysUnavailable`] while no key set is loaded.
    pub async fn ensure_keys(&self) -> Result<(), AuthError> {
        let KeySource::Jwks(cache) = &self.inner.source else { return Ok(()) };
        if cache.current().is_some() {
            return Ok(());
        }
        let fetched = cache.refetch_on_demand().await?;
        match cache.current() {
            Some(_) => Ok(()),
            None if fetched => Err(AuthError::KeysUnavailable("the JWKS has not been loaded yet".to_owned())),
            None => Err(AuthError::KeysUnavailable(format!(
                "the JWKS has not been loaded yet; the next attempt is at most {}s away",
                crate::jwks::MIN_REFETCH_INTERVAL.as_secs()
            ))),
        }
    }

    /// Verifies `token` (the bare JWT, without `Bearer `; see [`bearer_token`]) and returns its
    /// claims.
    ///
    /// # Errors
    ///
    /// The [`AuthError`] saying why the token is rejected; [`AuthError::KeysUnavailable`] when a
    /// JWKS is configured but could not be loaded.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = parse_header(token)?;
        let alg = header.alg;
        match &self.inner.source {
            KeySource::Secret(key) => {
                self.check_static(alg, AlgorithmFamily::Hmac, Algorithm::HS256, None)?;
                self.decode(token, key, alg)
            }
            KeySource::Public(pk) => {
                self.check_static(alg, pk.family, pk.default_alg, pk.curve.as_ref())?;
                self.decode(token, &pk.key, alg)
            }
            KeySource::Jwks(cache) => self.verify_jwks(cache, token, alg, header.kid.as_deref()).await,
        }
    }

    fn not_allowed(alg: Algorithm) -> AuthError {
        AuthError::AlgorithmNotAllowed(alg_name(alg).to_owned())
    }

    /// Checks a token algorithm against a static key.
    fn check_static(
        &self,
        alg: Algorithm,
        family: AlgorithmFamily,
        derived: Algorithm,
        curve: Option<&jsonwebtoken::jwk::EllipticCurve>,
    ) -> Result<(), AuthError> {
        let allowed = match &self.inner.allowed {
            Some(list) => list.contains(&alg),
            None => alg == derived,
        };
        if !allowed || alg.family() != family || !curve_fits(alg, curve) {
            return Err(Self::not_allowed(alg));
        }
        Ok(())
    }

    /// Whether a JWKS key may verify a token of algorithm `alg`.
    fn jwks_key_fits(&self, key: &JwksKey, alg: Algorithm) -> bool {
        if key.family != alg.family() || !curve_fits(alg, key.curve.as_ref()) {
            return false;
        }
        match key.alg {
            Some(declared) => declared == alg,
            // Without a declared algorithm: the configured list (checked before), or the usual
            // algorithm of the key type.
            None => {
                self.inner.allowed.is_some()
                    || matches!(alg, Algorithm::RS256 | Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA)
            }
        }
    }

    async fn verify_jwks(
        &self,
        cache: &JwksCache,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Claims, AuthError> {
        if alg.family() == AlgorithmFamily::Hmac || self.inner.allowed.as_ref().is_some_and(|l| !l.contains(&alg)) {
            return Err(Self::not_allowed(alg));
        }
        let set = match cache.current() {
            Some(set) => set,
            None => {
                cache.refetch_on_demand().await?;
                cache
                    .current()
                    .ok_or_else(|| AuthError::KeysUnavailable("the JWKS has not been loaded yet".to_owned()))?
            }
        };

        if let Some(kid) = kid {
            let key = match set.get(kid) {
                Some(key) => key.clone(),
                None => {
                    // Maybe the keys rotated. Refetch failures are logged by the cache; the
                    // old keys stay in place.
                    let _ = cache.refetch_on_demand().await;
                    cache
                        .current()
                        .and_then(|s| s.get(kid).cloned())
                        .ok_or_else(|| AuthError::UnknownKey(Some(client_safe(kid, 64))))?
                }
            };
            if !self.jwks_key_fits(&key, alg) {
                return Err(Self::not_allowed(alg));
            }
            return self.decode(token, &key.key, alg);
        }

        let mut candidates: Vec<JwksKey> = set.keys.iter().filter(|k| self.jwks_key_fits(k, alg)).cloned().collect();
        if candidates.is_empty() {
            let _ = cache.refetch_on_demand().await;
            if let Some(set) = cache.current() {
                candidates = set.keys.iter().filter(|k| self.jwks_key_fits(k, alg)).cloned().collect();
            }
        }
        if candidates.is_empty() {
            return Err(AuthError::UnknownKey(None));
        }
        for key in &candidates {
            match self.decode(token, &key.key, alg) {
                Err(AuthError::InvalidSignature) => continue,
                other => return other,
            }
        }
        Err(AuthError::InvalidSignature)
    }

    fn decode(&self, token: &str, key: &DecodingKey, alg: Algorithm) -> Result<Claims, AuthError> {
        let mut validation = self.inner.validation.clone();
        validation.algorithms = vec![alg];
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| from_jwt_error(&e, alg_name(alg)))
    }
}

fn spawn_refresh(cache: Weak<JwksCache>, every: Duration) -> Option<tokio::task::AbortHandle> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no Tokio runtime: the JWKS will only be refetched on demand");
        return None;
    };
    let every = every.max(Duration::from_secs(1));
    let task = runtime.spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(cache) = cache.upgrade() else { break };
            // Failures are logged by the cache and keep the previous keys.
            let _ = cache.refresh().await;
        }
    });
    Some(task.abort_handle())
}

/// Decodes and checks the header: shape, `alg` (never `none`), `crit`, `kid`.
fn parse_header(token: &str) -> Result<TokenHeader, AuthError> {
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed(format!("the token is longer than {MAX_TOKEN_LEN} bytes")));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("a JWT has three dot-separated parts".to_owned()));
    };
    if header.is_empty() || payload.is_empty() {
        return Err(AuthError::Malformed("a JWT has three dot-separated parts".to_owned()));
    }
    let bytes = keys::b64url_decode(header)
        .ok_or_else(|| AuthError::Malformed("the header is not valid base64url".to_owned()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed("the header is not valid JSON".to_owned()))?;
    let Some(obj) = value.as_object() else {
        return Err(AuthError::Malformed("the header is not a JSON object".to_owned()));
    };
    let Some(alg) = obj.get("alg").and_then(serde_json::Value::as_str) else {
        return Err(AuthError::Malformed("the header has no `alg`".to_owned()));
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(AuthError::AlgorithmNotAllowed("none".to_owned()));
    }
    let Some(alg) = keys::parse_alg(alg) else {
        return Err(AuthError::AlgorithmNotAllowed(client_safe(alg, 32)));
    };
    if obj.contains_key("crit") {
        return Err(AuthError::Malformed("critical header extensions (`crit`) are not supported".to_owned()));
    }
    let kid = match obj.get("kid") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(kid)) => Some(kid.clone()),
        Some(_) => {
            return Err(AuthError::Malformed("the header `kid` is not a string".to_owned()));
        }
    };
    Ok(TokenHeader { alg, kid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        // Minimal unpadded base64url encoder for tests.
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let b = s.as_bytes();
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = (u32::from(chunk[0]) << 16)
                | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
                | u32::from(*chunk.get(2).unwrap_or(&0));
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    fn header_err(header_json: &str) -> AuthError {
        match parse_header(&format!("{}.{}.sig", b64(header_json), b64("{}"))) {
            Ok(_) => panic!("accepted {header_json}"),
            Err(e) => e,
        }
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token("Bearer a.b.c"), Ok("a.b.c"));
        assert_eq!(bearer_token("BEARER a.b.c"), Ok("a.b.c"));
        assert_eq!(bearer_token("bearer\ta.b.c "), Ok("a.b.c"));
        assert_eq!(bearer_token(""), Err(AuthError::MissingToken));
        assert_eq!(bearer_token("Bearer"), Err(AuthError::MissingToken));
        assert_eq!(bearer_token("Bearer    "), Err(AuthError::MissingToken));
        assert!(matches!(bearer_token("Bearer a b"), Err(AuthError::Malformed(_))));
        assert!(matches!(bearer_token("Bearera.b.c"), Err(AuthError::Malformed(_))));
        assert!(matches!(bearer_token("Token a.b.c"), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn header_parsing() {
        let ok = parse_header(&format!("{}.{}.sig", b64(r#"{"alg":"RS256","kid":"k1"}"#), b64("{}"))).unwrap();
        assert_eq!(ok.alg, Algorithm::RS256);
        assert_eq!(ok.kid.as_deref(), Some("k1"));
        assert_eq!(header_err(r#"{"alg":"none"}"#), AuthError::AlgorithmNotAllowed("none".into()));
        assert_eq!(header_err(r#"{"alg":"NONE"}"#), AuthError::AlgorithmNotAllowed("none".into()));
        assert_eq!(header_err(r#"{"alg":"HS1"}"#), AuthError::AlgorithmNotAllowed("HS1".into()));
        assert!(matches!(header_err(r#"{"typ":"JWT"}"#), AuthError::Malformed(_)));
        assert!(matches!(header_err(r#"{"alg":5}"#), AuthError::Malformed(_)));
        assert!(matches!(header_err(r#"["alg"]"#), AuthError::Malformed(_)));
        assert!(matches!(header_err(r#"{"alg":"RS256","kid":1}"#), AuthError::Malformed(_)));
        assert!(matches!(header_err(r#"{"alg":"RS256","crit":["b64"]}"#), AuthError::Malformed(_)));
        assert!(matches!(header_err("not json"), AuthError::Malformed(_)));
    }

    #[test]
    fn shape_errors() {
        assert_eq!(parse_header("").err(), Some(AuthError::MissingToken));
        for t in ["a", "a.b", "a.b.c.d", ".b.c", "a..c", "!!.b.c"] {
            assert!(matches!(parse_header(t), Err(AuthError::Malformed(_))), "{t}");
        }
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert!(matches!(parse_header(&long), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn verify_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        fn assert_sync<T: Send + Sync + Clone + 'static>() {}
        assert_sync::<JwtVerifier>();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let v = rt
            .block_on(JwtVerifier::from_config(&JwtConfig {
                secret: Some("0123456789abcdef0123456789abcdef".into()),
                ..JwtConfig::default()
            }))
            .unwrap();
        let fut = v.verify("a.b.c");
        assert_send(&fut);
        drop(fut);
    }
}

//! The `auth` configuration section.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::AlgorithmFamily;
use microframework_core::{Validate, Validation};
use serde::{Deserialize, Deserializer, Serialize};

use crate::keys;

/// The `auth` section of the service configuration.
///
/// ```yaml
/// auth:
///   jwt:
///     jwks_url: https://idp.example.com/.well-known/jwks.json
///     issuer: https://idp.example.com/
///     audience: orders-api
///     required: true
///     public_paths: ["/health/*", "/docs/*"]
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// JWT bearer authentication; absent means off.
    pub jwt: Option<JwtConfig>,
}

impl AuthConfig {
    /// The JWT settings when JWT authentication is configured and enabled.
    pub fn enabled_jwt(&self) -> Option<&JwtConfig> {
        self.jwt.as_ref().filter(|j| j.enabled)
    }
}

impl Validate for AuthConfig {
    fn validate(&self, v: &mut Validation) {
        if let Some(jwt) = &self.jwt {
            v.nested("jwt", jwt);
        }
    }
}

/// JWT bearer-token settings (`auth.jwt`).
///
/// Exactly one key source must be set: [`secret`](Self::secret) (HMAC),
/// [`public_key`](Self::public_key) (RSA, EC or Ed25519) or [`jwks_url`](Self::jwks_url).
///
/// The `Debug` output redacts the secret.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// Whether JWT authentication is on (default `true`: the section being present turns it on).
    pub enabled: bool,
    /// The HMAC shared secret (`HS256`/`HS384`/`HS512`), at least 32 bytes.
    pub secret: Option<String>,
    /// The PEM text of an RSA, EC or Ed25519 public key, or the path of a file holding it (any
    /// value that does not start with `-----BEGIN` is taken as a path).
    pub public_key: Option<String>,
    /// The `http(s)` URL of a JWKS document; keys are fetched, cached by `kid` and refreshed.
    pub jwks_url: Option<String>,
    /// The allowed algorithms, such as `["RS256"]`. Empty (the default) derives them from the key
    /// source: `HS256` for a secret; `RS256`, `ES256`, `ES384` or `EdDSA` by public key type; for
    /// a JWKS, `RS256`, `ES256` and whatever algorithm each published key declares.
    #[serde(deserialize_with = "one_or_many")]
    pub algorithms: Vec<String>,
    /// The required `iss` claim, when set.
    pub issuer: Option<String>,
    /// The accepted `aud` values; when non-empty, a token must name at least one. Accepts a single
    /// string (comma-separated values are split) or a list.
    ///
    /// Required with [`public_key`](Self::public_key) and [`jwks_url`](Self::jwks_url): those keys
    /// belong to an identity provider that signs tokens for many services, so without an audience
    /// a token minted for any of them would be accepted here. Opt out with
    /// [`allow_any_audience`](Self::allow_any_audience).
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Accept tokens for any audience even though the keys are shared (`public_key` or
    /// `jwks_url` without `audience`). Default `false`; when on, a warning is logged at start-up.
    pub allow_any_audience: bool,
    /// Clock-skew allowance for `exp` and `nbf`, in seconds (default 60, at most 600).
    pub leeway_seconds: u64,
    /// How often the JWKS is refetched in the background (default `5m`).
    #[serde(with = "humantime_serde")]
    pub jwks_refresh_interval: Duration,
    /// The HTTP timeout of a JWKS fetch (default `5s`).
    #[serde(with = "humantime_serde")]
    pub jwks_timeout: Duration,
    /// When `true`, every route requires a valid token except [`public_paths`](Self::public_paths)
    /// (applied by the HTTP layer). Default `false`: handlers opt in by extracting the claims.
    pub required: bool,
    /// Paths exempt from [`required`](Self::required): exact paths (`/health/live`) or prefixes
    /// ending in `*` (`/docs/*`, `/public*`). See [`JwtConfig::is_public`].
    #[serde(deserialize_with = "one_or_many")]
    pub public_paths: Vec<String>,
}

/// The smallest accepted HMAC secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;
/// The largest accepted leeway, in seconds.
pub const MAX_LEEWAY_SECONDS: u64 = 600;

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            secret: None,
            public_key: None,
            jwks_url: None,
            algorithms: Vec::new(),
            issuer: None,
            audience: Vec::new(),
            allow_any_audience: false,
            leeway_seconds: 60,
            jwks_refresh_interval: Duration::from_secs(300),
            jwks_timeout: Duration::from_secs(5),
            required: false,
            public_paths: Vec::new(),
        }
    }
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("enabled", &self.enabled)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("public_key", &self.public_key.as_ref().map(|k| describe_public_key(k)))
            .field("jwks_url", &self.jwks_url)
            .field("algorithms", &self.algorithms)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("allow_any_audience", &self.allow_any_audience)
            .field("leeway_seconds", &self.leeway_seconds)
            .field("jwks_refresh_interval", &self.jwks_refresh_interval)
            .field("jwks_timeout", &self.jwks_timeout)
            .field("required", &self.required)
            .field("public_paths", &self.public_paths)
            .finish()
    }
}

fn describe_public_key(value: &str) -> String {
    if value.trim_start().starts_with("-----BEGIN") { "[PEM]".to_owned() } else { value.trim().to_owned() }
}

/// Which key source a configuration uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceKind {
    Secret,
    PublicKey,
    Jwks,
}

impl JwtConfig {
    /// Whether `path` is exempt from authentication when [`required`](Self::required) is on.
    ///
    /// A pattern matches exactly, unless it ends in `*`: then it matches every path starting with
    /// the part before the `*`; a pattern ending in `/*` also matches the path without the
    /// trailing slash (`/docs/*` matches `/docs`, `/docs/` and `/docs/index.html`, not
    /// `/docsearch`). Paths with `.` or `..` segments or empty segments never match, so that
    /// `/public/../admin` cannot borrow the exemption of `/public/*`.
    ///
    /// ```
    /// use microframework_auth::JwtConfig;
    /// let cfg = JwtConfig {
    ///     public_paths: vec!["/health/*".into(), "/openapi.json".into()],
    ///     ..JwtConfig::default()
    /// };
    /// assert!(cfg.is_public("/health/live"));
    /// assert!(cfg.is_public("/openapi.json"));
    /// assert!(!cfg.is_public("/openapi.json/x"));
    /// assert!(!cfg.is_public("/orders"));
    /// assert!(!cfg.is_public("/health/../orders"));
    /// ```
    pub fn is_public(&self, path: &str) -> bool {
        if has_dot_or_empty_segments(path) {
            return false;
        }
        self.public_paths.iter().any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => {
                path.starts_with(prefix) || prefix.strip_suffix('/').is_some_and(|p| !p.is_empty() && path == p)
            }
            None => path == pattern,
        })
    }

    /// The configured key sources.
    pub(crate) fn sources(&self) -> Vec<SourceKind> {
        let mut out = Vec::new();
        if self.secret.is_some() {
            out.push(SourceKind::Secret);
        }
        if self.public_key.is_some() {
            out.push(SourceKind::PublicKey);
        }
        if self.jwks_url.is_some() {
            out.push(SourceKind::Jwks);
        }
        out
    }

    /// Records problems; `require_source` demands a key source even when disabled.
    pub(crate) fn check(&self, v: &mut Validation, require_source: bool) {
        let sources = self.sources();
        if self.enabled || require_source {
            v.check(
                sources.len() == 1,
                "",
                format!("exactly one key source among `secret`, `public_key` and `jwks_url` (found {})", sources.len()),
            );
        }

        if let Some(secret) = &self.secret {
            v.check(
                secret.len() >= MIN_SECRET_LEN,
                "secret",
                format!(
                    "a secret of at least {MIN_SECRET_LEN} bytes (found {}); generate one with `openssl rand -base64 48`",
                    secret.len()
                ),
            );
        }

        let mut key_family = None;
        if let Some(public_key) = &self.public_key {
            match keys::load_pem(public_key).and_then(|pem| keys::parse_public_key(&pem)) {
                Ok(k) => key_family = Some(k.family),
                Err(e) => v.error(
                    "public_key",
                    format!("a PEM-encoded RSA, EC or Ed25519 public key, or the path of a file holding one: {e}"),
                ),
            }
        }

        if let Some(url) = &self.jwks_url {
            match url.parse::<http::Uri>() {
                Ok(u)
                    if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty()) =>
                {
                    if !cfg!(feature = "jwks") {
                        v.error("jwks_url", crate::jwks::NO_JWKS);
                    }
                }
                _ => v.error("jwks_url", "an absolute http:// or https:// URL"),
            }
        }

        let source = (sources.len() == 1).then(|| sources[0]);
        for (i, name) in self.algorithms.iter().enumerate() {
            let key = format!("algorithms.{i}");
            if name.eq_ignore_ascii_case("none") {
                v.error(&key, "a signing algorithm; `none` (unsigned tokens) is never accepted");
                continue;
            }
            let Some(alg) = keys::parse_alg(name) else {
                v.error(
                    &key,
                    format!(
                        "one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA (found `{}`)",
                        crate::error::client_safe(name, 32)
                    ),
                );
                continue;
            };
            let family = alg.family();
            match source {
                Some(SourceKind::Secret) if family != AlgorithmFamily::Hmac => {
                    v.error(
                        &key,
                        format!("an HMAC algorithm (HS256, HS384, HS512) to go with `secret` (found `{name}`)"),
                    );
                }
                Some(SourceKind::PublicKey | SourceKind::Jwks) if family == AlgorithmFamily::Hmac => {
                    v.error(
                        &key,
                        format!(
                            "an asymmetric algorithm (RS*, PS*, ES*, EdDSA) to go with `public_key` or `jwks_url`; `{name}` needs `secret`"
                        ),
                    );
                }
                Some(SourceKind::PublicKey) if key_family.is_some_and(|f| f != family) => {
                    v.error(&key, format!("an algorithm matching the type of `public_key` (found `{name}`)"));
                }
                _ => {}
            }
        }

        if let Some(issuer) = &self.issuer {
            v.check(!issuer.trim().is_empty(), "issuer", "a non-empty issuer, or no `issuer` key");
        }
        for (i, aud) in self.audience.iter().enumerate() {
            v.check(!aud.trim().is_empty(), &format!("audience.{i}"), "a non-empty audience");
        }
        if self.audience.is_empty()
            && !self.allow_any_audience
            && (self.enabled || require_source)
            && let Some(source @ (SourceKind::PublicKey | SourceKind::Jwks)) = source
        {
            let key = if source == SourceKind::Jwks { "jwks_url" } else { "public_key" };
            v.error(
                "audience",
                format!(
                    "the audience this service accepts, such as `orders-api`: the keys of `{key}` belong to an \
                     identity provider that signs tokens for many services, and without an audience a token \
                     minted for any of them is accepted here (set `allow_any_audience: true` to accept that)"
                ),
            );
        }
        v.check(
            self.leeway_seconds <= MAX_LEEWAY_SECONDS,
            "leeway_seconds",
            format!("at most {MAX_LEEWAY_SECONDS} seconds (found {})", self.leeway_seconds),
        );
        v.check(
            self.jwks_refresh_interval >= Duration::from_secs(1),
            "jwks_refresh_interval",
            "a duration of at least 1s, such as `5m`",
        );
        v.check(
            !self.jwks_timeout.is_zero() && self.jwks_timeout <= Duration::from_secs(120),
            "jwks_timeout",
            "a duration above 0 and at most 2m, such as `5s`",
        );
        for (i, p) in self.public_paths.iter().enumerate() {
            let star = p.find('*');
            v.check(
                p.starts_with('/') && star.is_none_or(|s| s == p.len() - 1),
                &format!("public_paths.{i}"),
                "a path starting with `/`, optionally ending in `*` (no other wildcard)",
            );
        }
    }
}

impl Validate for JwtConfig {
    fn validate(&self, v: &mut Validation) {
        self.check(v, false);
    }
}

fn has_dot_or_empty_segments(path: &str) -> bool {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len().saturating_sub(1);
    segments.iter().enumerate().any(|(i, s)| *s == "." || *s == ".." || (s.is_empty() && i != last))
}

/// Deserialises a list from a list or from one string (split on commas).
fn one_or_many<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }

        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect())
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            one_or_many(d)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some(item) = seq.next_element::<String>()? {
                out.push(item);
            }
            Ok(out)
        }
    }
    de.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(cfg: &JwtConfig) -> Vec<(String, String)> {
        let mut v = Validation::new("auth.jwt");
        cfg.validate(&mut v);
        v.into_problems()
    }

    fn keys_of(cfg: &JwtConfig) -> Vec<String> {
        problems(cfg).into_iter().map(|(k, _)| k).collect()
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const ED25519_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEASU0B2Rp/aHPi9GWbWSzJuF3llQStS7BJ6YZyiKEsIfw=\n-----END PUBLIC KEY-----\n";

    #[test]
    fn defaults() {
        let c = JwtConfig::default();
        assert!(c.enabled);
        assert_eq!(c.leeway_seconds, 60);
        assert_eq!(c.jwks_refresh_interval, Duration::from_secs(300));
        assert_eq!(c.jwks_timeout, Duration::from_secs(5));
        assert!(!c.required);
    }

    #[test]
    fn deserialises_with_defaults_and_single_audience() {
        let c: JwtConfig = serde_json::from_str(r#"{"secret":"x","audience":"api","jwks_timeout":"2s"}"#).unwrap();
        assert_eq!(c.audience, vec!["api"]);
        assert_eq!(c.jwks_timeout, Duration::from_secs(2));
        assert!(c.enabled);
        let c: JwtConfig = serde_json::from_str(r#"{"audience":["a","b"],"algorithms":"RS256, ES256"}"#).unwrap();
        assert_eq!(c.audience, vec!["a", "b"]);
        assert_eq!(c.algorithms, vec!["RS256", "ES256"]);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_str::<JwtConfig>(r#"{"secrett":"x"}"#).is_err());
        assert!(serde_json::from_str::<AuthConfig>(r#"{"jwtt":{}}"#).is_err());
    }

    #[test]
    fn section_present_enables_jwt() {
        let a: AuthConfig = serde_json::from_str(r#"{"jwt":{"secret":"x"}}"#).unwrap();
        assert!(a.enabled_jwt().is_some());
        let a: AuthConfig = serde_json::from_str(r#"{"jwt":{"enabled":false}}"#).unwrap();
        assert!(a.enabled_jwt().is_none());
        assert!(AuthConfig::default().enabled_jwt().is_none());
    }

    #[test]
    fn valid_secret_config_passes() {
        let c = JwtConfig { secret: Some(SECRET.into()), ..JwtConfig::default() };
        assert_eq!(problems(&c), vec![]);
    }

    #[test]
    fn no_key_source_is_reported_on_the_section() {
        assert_eq!(keys_of(&JwtConfig::default()), vec!["auth.jwt"]);
    }

    #[test]
    fn disabled_without_source_is_fine() {
        let c = JwtConfig { enabled: false, ..JwtConfig::default() };
        assert_eq!(problems(&c), vec![]);
    }

    #[test]
    fn two_key_sources_are_reported() {
        let c = JwtConfig {
            secret: Some(SECRET.into()),
            jwks_url: Some("https://idp.example.com/jwks".into()),
            ..JwtConfig::default()
        };
        let p = problems(&c);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].1.contains("found 2"));
    }

    #[test]
    fn short_secret_says_how_long() {
        let c = JwtConfig { secret: Some("short".into()), ..JwtConfig::default() };
        let p = problems(&c);
        assert_eq!(p[0].0, "auth.jwt.secret");
        assert!(p[0].1.contains("32 bytes"), "{}", p[0].1);
        assert!(!p[0].1.contains("short"), "the secret must not be echoed");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let c = JwtConfig {
            secret: Some("short".into()),
            algorithms: vec!["RS256".into(), "none".into(), "XX999".into(), "HS256".into()],
            issuer: Some(" ".into()),
            audience: vec!["".into()],
            leeway_seconds: 601,
            jwks_refresh_interval: Duration::ZERO,
            jwks_timeout: Duration::ZERO,
            public_paths: vec!["health".into(), "/a/*/b".into(), "/ok/*".into()],
            ..JwtConfig::default()
        };
        assert_eq!(
            keys_of(&c),
            vec![
                "auth.jwt.secret",
                "auth.jwt.algorithms.0",
                "auth.jwt.algorithms.1",
                "auth.jwt.algorithms.2",
                "auth.jwt.issuer",
                "auth.jwt.audience.0",
                "auth.jwt.leeway_seconds",
                "auth.jwt.jwks_refresh_interval",
                "auth.jwt.jwks_timeout",
                "auth.jwt.public_paths.0",
                "auth.jwt.public_paths.1",
            ]
        );
    }

    #[test]
    fn shared_keys_need_an_audience() {
        for c in [
            JwtConfig { jwks_url: Some("https://idp.example.com/jwks".into()), ..JwtConfig::default() },
            JwtConfig { public_key: Some(ED25519_PEM.into()), ..JwtConfig::default() },
        ] {
            let p = problems(&c);
            assert_eq!(p.len(), 1, "{p:?}");
            assert_eq!(p[0].0, "auth.jwt.audience");
            assert!(p[0].1.contains("allow_any_audience"), "{}", p[0].1);
            let ok = JwtConfig { audience: vec!["orders-api".into()], ..c.clone() };
            assert_eq!(problems(&ok), vec![]);
            let opted_out = JwtConfig { allow_any_audience: true, ..c.clone() };
            assert_eq!(problems(&opted_out), vec![]);
            let off = JwtConfig { enabled: false, ..c };
            assert_eq!(problems(&off), vec![]);
        }
        // A secret is this service's own: no audience needed.
        assert_eq!(problems(&JwtConfig { secret: Some(SECRET.into()), ..JwtConfig::default() }), vec![]);
    }

    #[test]
    fn hmac_algorithms_need_a_secret() {
        let c = JwtConfig {
            audience: vec!["api".into()],
            jwks_url: Some("https://idp.example.com/jwks".into()),
            algorithms: vec!["HS256".into(), "RS256".into()],
            ..JwtConfig::default()
        };
        assert_eq!(keys_of(&c), vec!["auth.jwt.algorithms.0"]);
    }

    #[test]
    fn jwks_url_must_be_http() {
        for bad in ["ftp://x/jwks", "not a url", "/relative", "file:///etc/passwd", "https://", "idp.example.com/jwks"]
        {
            let c = JwtConfig { jwks_url: Some(bad.into()), allow_any_audience: true, ..JwtConfig::default() };
            assert_eq!(keys_of(&c), vec!["auth.jwt.jwks_url"], "{bad}");
        }
        let c = JwtConfig {
            jwks_url: Some("http://127.0.0.1:8080/jwks".into()),
            audience: vec!["api".into()],
            ..JwtConfig::default()
        };
        assert_eq!(problems(&c), vec![]);
    }

    /// CI also runs this test with `--no-default-features`, where the feature is off.
    #[test]
    fn jwks_url_without_the_feature() {
        let c = JwtConfig {
            jwks_url: Some("https://idp.example.com/jwks".into()),
            audience: vec!["api".into()],
            ..JwtConfig::default()
        };
        let p = problems(&c);
        if cfg!(feature = "jwks") {
            assert_eq!(p, vec![]);
        } else {
            assert_eq!(keys_of(&c), vec!["auth.jwt.jwks_url"]);
            assert!(p[0].1.contains("enable the `jwks` feature of the `microframework` dependency"), "{}", p[0].1);
        }
    }

    #[test]
    fn unreadable_public_key_file_is_reported() {
        let c = JwtConfig {
            public_key: Some("/does/not/exist.pem".into()),
            audience: vec!["api".into()],
            ..JwtConfig::default()
        };
        let p = problems(&c);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "auth.jwt.public_key");
        assert!(p[0].1.contains("/does/not/exist.pem"));
    }

    #[test]
    fn debug_redacts_the_secret() {
        let c = JwtConfig { secret: Some(SECRET.into()), ..JwtConfig::default() };
        let s = format!("{c:?}");
        assert!(!s.contains(SECRET));
        assert!(s.contains("[redacted]"));
    }

    #[test]
    fn public_paths_match_exact_and_wildcards() {
        let c = JwtConfig {
            public_paths: vec!["/health/*".into(), "/openapi.json".into(), "/static*".into()],
            ..JwtConfig::default()
        };
        assert!(c.is_public("/health/live"));
        assert!(c.is_public("/health/"));
        assert!(c.is_public("/health"));
        assert!(!c.is_public("/healthz"));
        assert!(c.is_public("/openapi.json"));
        assert!(!c.is_public("/openapi.jsonx"));
        assert!(c.is_public("/static"));
        assert!(c.is_public("/static-files/a.css"));
        assert!(!c.is_public("/orders"));
        assert!(!c.is_public("/health/../orders"));
        assert!(!c.is_public("/health/./x"));
        assert!(!c.is_public("/health//x"));
        assert!(!c.is_public(""));
    }

    #[test]
    fn no_public_paths_means_nothing_public() {
        assert!(!JwtConfig::default().is_public("/"));
    }

    #[test]
    fn star_alone_matches_everything() {
        let c = JwtConfig { public_paths: vec!["/*".into()], ..JwtConfig::default() };
        assert!(c.is_public("/"));
        assert!(c.is_public("/anything"));
    }
}

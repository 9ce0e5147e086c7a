//! The `server` and `http` configuration sections.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use microframework_core::{ByteSize, Validate, Validation};

/// The `server` section: where the HTTP listener binds, and how much it takes.
///
/// ```yaml
/// server:
///   host: 0.0.0.0
///   port: 8080
///   admin_port: 9090            # /metrics and full health details, only there
///   max_connections: 10000
///   keep_alive_timeout: 30s
///   http2_max_concurrent_streams: 200
///   max_header_size: 64KiB
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind (default `127.0.0.1`; use `0.0.0.0` in containers).
    pub host: String,
    /// Port (default 8080; 0 picks a free port).
    pub port: u16,
    /// Port of the admin listener, on the same host (default: none). When set, `/metrics` and
    /// the framework's admin endpoints are served only there, with the health endpoints and the
    /// full readiness details; the public port keeps the health endpoints without error texts.
    pub admin_port: Option<u16>,
    /// Open connections at once (default 10000); a connection beyond that is answered `503` with
    /// `Retry-After` and closed.
    pub max_connections: usize,
    /// An HTTP/1 connection that does not send a complete request head within this time, idle
    /// between requests or trickling its headers, is closed (default `30s`).
    #[serde(with = "humantime_serde")]
    pub keep_alive_timeout: Duration,
    /// Concurrent streams (requests) per HTTP/2 connection (default 200).
    pub http2_max_concurrent_streams: u32,
    /// The largest request head: HTTP/1 header bytes (larger gets `431`) and HTTP/2
    /// `SETTINGS_MAX_HEADER_LIST_SIZE` (default `64KiB`).
    pub max_header_size: ByteSize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8080,
            admin_port: None,
            max_connections: 10_000,
            keep_alive_timeout: Duration::from_secs(30),
            http2_max_concurrent_streams: 200,
            max_header_size: ByteSize::kib(64),
        }
    }
}

impl Validate for ServerConfig {
    fn validate(&self, v: &mut Validation) {
        v.check(
            self.host.parse::<std::net::IpAddr>().is_ok() || self.host == "localhost",
            "host",
            "an IP address such as 127.0.0.1 or 0.0.0.0",
        );
        if let Some(admin) = self.admin_port {
            v.check(
                admin == 0 || admin != self.port,
                "admin_port",
                "a port other than server.port (the admin endpoints must not be public), or no value",
            );
        }
        v.check(self.max_connections > 0, "max_connections", "a number greater than 0");
        v.check(
            self.keep_alive_timeout >= Duration::from_millis(100),
            "keep_alive_timeout",
            "a duration of at least 100ms, such as 30s",
        );
        v.check(self.http2_max_concurrent_streams > 0, "http2_max_concurrent_streams", "a number greater than 0");
        v.check(
            self.max_header_size >= ByteSize::kib(8) && self.max_header_size <= ByteSize::mib(16),
            "max_header_size",
            "a size from 8KiB to 16MiB, such as 64KiB",
        );
    }
}

/// The `http` section: the default middleware stack, each part switchable and tunable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Request ids (`x-request-id`).
    pub request_id: RequestIdConfig,
    /// Per-request trace span and access log.
    pub trace: TraceConfig,
    /// RED metrics per route template.
    pub metrics: Toggle,
    /// Request timeout.
    pub timeout: TimeoutConfig,
    /// Request body size limit.
    pub body_limit: BodyLimitConfig,
    /// Turning handler panics into 500 responses.
    pub catch_panic: Toggle,
    /// Cross-origin resource sharing.
    pub cors: CorsConfig,
    /// Security response headers.
    pub security_headers: SecurityHeadersConfig,
    /// Whom to believe about the client's address behind reverse proxies.
    pub client_ip: crate::client_ip::ClientIpConfig,
    /// Rate limiting (reloadable).
    pub rate_limit: RateLimitConfig,
    /// OpenAPI document and docs UI.
    pub openapi: OpenApiConfig,
}

impl Validate for HttpConfig {
    fn validate(&self, v: &mut Validation) {
        v.nested("timeout", &self.timeout);
        v.nested("body_limit", &self.body_limit);
        v.nested("cors", &self.cors);
        v.nested("security_headers", &self.security_headers);
        v.nested("client_ip", &self.client_ip);
        v.nested("rate_limit", &self.rate_limit);
        v.nested("openapi", &self.openapi);
        v.nested("request_id", &self.request_id);
    }
}

/// A middleware that is on unless switched off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Toggle {
    /// Whether it is on (default `true`).
    pub enabled: bool,
}

impl Default for Toggle {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// `http.request_id`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RequestIdConfig {
    /// On by default.
    pub enabled: bool,
    /// Header accepted from clients and echoed on responses (default `x-request-id`).
    pub header: String,
}

impl Default for RequestIdConfig {
    fn default() -> Self {
        Self { enabled: true, header: "x-request-id".to_owned() }
    }
}

impl Validate for RequestIdConfig {
    fn validate(&self, v: &mut Validation) {
        v.check(http::HeaderName::from_bytes(self.header.as_bytes()).is_ok(), "header", "a valid HTTP header name");
    }
}

/// `http.trace`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TraceConfig {
    /// A span per request, so every log line of the request carries its id (default on).
    pub enabled: bool,
    /// Log one `info` line per completed request (default off: 5xx are always logged).
    pub access_log: bool,
}

impl Default for TraceConfig {
    fn default() -> Self {
        Self { enabled: true, access_log: false }
    }
}

/// `http.timeout`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutConfig {
    /// On by default.
    pub enabled: bool,
    /// A request that takes longer gets `503` (default `30s`).
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self { enabled: true, duration: Duration::from_secs(30) }
    }
}

impl Validate for TimeoutConfig {
    fn validate(&self, v: &mut Validation) {
        v.check(self.duration > Duration::ZERO, "duration", "a duration greater than 0, such as 30s");
    }
}

/// `http.body_limit`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BodyLimitConfig {
    /// On by default.
    pub enabled: bool,
    /// Largest accepted request body (default `2MiB`); larger bodies get `413`.
    pub max: ByteSize,
}

impl Default for BodyLimitConfig {
    fn default() -> Self {
        Self { enabled: true, max: ByteSize::mib(2) }
    }
}

impl Validate for BodyLimitConfig {
    fn validate(&self, v: &mut Validation) {
        v.check(self.max.bytes() > 0, "max", "a size greater than 0, such as 2MiB");
    }
}

/// `http.cors`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Off by default.
    pub enabled: bool,
    /// Allowed origins (`https://app.example.com`), or `["*"]` for any.
    pub allowed_origins: Vec<String>,
    /// Allowed methods.
    pub allowed_methods: Vec<String>,
    /// Allowed request headers.
    pub allowed_headers: Vec<String>,
    /// Response headers exposed to scripts.
    pub exposed_headers: Vec<String>,
    /// Allow cookies and credentials (not with `*` origins).
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            allowed_origins: Vec::new(),
            allowed_methods: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].map(String::from).to_vec(),
            allowed_headers: ["authorization", "content-type", "x-request-id"].map(String::from).to_vec(),
            exposed_headers: vec!["x-request-id".to_owned()],
            allow_credentials: false,
            max_age: Duration::from_secs(3600),
        }
    }
}

impl Validate for CorsConfig {
    fn validate(&self, v: &mut Validation) {
        for (i, o) in self.allowed_origins.iter().enumerate() {
            v.check(
                o == "*"
                    || ((o.starts_with("http://") || o.starts_with("https://"))
                        && http::HeaderValue::from_str(o).is_ok()),
                &format!("allowed_origins.{i}"),
                "an origin such as https://app.example.com, or *",
            );
        }
        for (i, m) in self.allowed_methods.iter().enumerate() {
            v.check(http::Method::from_bytes(m.as_bytes()).is_ok(), &format!("allowed_methods.{i}"), "an HTTP method");
        }
        for (key, list) in [("allowed_headers", &self.allowed_headers), ("exposed_headers", &self.exposed_headers)] {
            for (i, h) in list.iter().enumerate() {
                v.check(
                    http::HeaderName::from_bytes(h.as_bytes()).is_ok(),
                    &format!("{key}.{i}"),
                    "a valid header name",
                );
            }
        }
        v.check(
            !(self.allow_credentials && self.allowed_origins.iter().any(|o| o == "*")),
            "allow_credentials",
            "false when allowed_origins contains * (browsers reject credentials with a wildcard origin)",
        );
        v.check(
            !(self.enabled && self.allowed_origins.is_empty()),
            "allowed_origins",
            "at least one origin when CORS is enabled",
        );
    }
}

/// `http.security_headers`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityHeadersConfig {
    /// On by default.
    pub enabled: bool,
    /// `Content-Security-Policy` (empty to omit).
    pub content_security_policy: String,
    /// `X-Frame-Options` (`DENY` or `SAMEORIGIN`, empty to omit).
    pub frame_options: String,
    /// `Referrer-Policy`.
    pub referrer_policy: String,
    /// `X-Content-Type-Options: nosniff`.
    pub content_type_options: bool,
    /// `Strict-Transport-Security`, only when served over HTTPS (default off).
    pub hsts: HstsConfig,
}

impl Default for SecurityHeadersConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            content_security_policy: "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'".to_owned(),
            frame_options: "DENY".to_owned(),
            referrer_policy: "strict-origin-when-cross-origin".to_owned(),
            content_type_options: true,
            hsts: HstsConfig::default(),
        }
    }
}

impl Validate for SecurityHeadersConfig {
    fn validate(&self, v: &mut Validation) {
        v.check(
            http::HeaderValue::from_str(&self.content_security_policy).is_ok(),
            "content_security_policy",
            "a valid header value",
        );
        v.check(
            matches!(self.frame_options.to_ascii_uppercase().as_str(), "" | "DENY" | "SAMEORIGIN"),
            "frame_options",
            "DENY, SAMEORIGIN or empty",
        );
        v.check(
            http::HeaderValue::from_str(&self.referrer_policy).is_ok(),
            "referrer_policy",
            "a valid header value such as no-referrer",
        );
    }
}

/// `http.security_headers.hsts`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HstsConfig {
    /// Off by default (turn on when clients reach the service over HTTPS).
    pub enabled: bool,
    /// `max-age` (default 365 days).
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// `includeSubDomains`.
    pub include_subdomains: bool,
    /// `preload`.
    pub preload: bool,
}

impl Default for HstsConfig {
    fn default() -> Self {
        Self { enabled: false, max_age: Duration::from_secs(365 * 86_400), include_subdomains: true, preload: false }
    }
}

/// `http.rate_limit`: token buckets per client address and per authenticated subject. Reloadable.
///
/// Every request takes a token from the bucket of its client address (`http.client_ip` says
/// which address that is) before its token is verified, so a flood of forged tokens is limited as
/// cheaply as anything else; an authenticated request then also takes one from the bucket of its
/// subject.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Off by default.
    pub enabled: bool,
    /// Bucket per client address, for every request (default 100/s, burst 200). Requests without
    /// a peer address share one bucket.
    pub per_ip: Bucket,
    /// Bucket per authenticated subject (the token's `sub`), after authentication (default
    /// 100/s, burst 200).
    pub per_subject: Bucket,
    /// Removed: the first `X-Forwarded-For` entry is whatever the client wrote. Accepted only to
    /// say so; see `http.client_ip`.
    #[serde(skip_serializing)]
    pub trust_forwarded_for: Option<bool>,
    /// Paths never limited (the health and metrics endpoints are always exempt). A trailing
    /// `*` matches a prefix.
    pub exempt_paths: Vec<String>,
}

impl Validate for RateLimitConfig {
    fn validate(&self, v: &mut Validation) {
        v.nested("per_ip", &self.per_ip);
        v.nested("per_subject", &self.per_subject);
        v.check(
            self.trust_forwarded_for.is_none(),
            "trust_forwarded_for",
            "no such key any more: a client can write any first X-Forwarded-For entry; list the proxies in front \
             of the service in http.client_ip.trusted_proxies (or set http.client_ip.trusted_hops)",
        );
    }
}

/// A token bucket: refills at `requests_per_second`, holds up to `burst`. A key left out takes
/// the value of `{ requests_per_second: 100, burst: 200 }`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Bucket {
    /// Sustained rate.
    pub requests_per_second: u32,
    /// Largest burst.
    pub burst: u32,
}

impl Default for Bucket {
    fn default() -> Self {
        Self { requests_per_second: 100, burst: 200 }
    }
}

impl Validate for Bucket {
    fn validate(&self, v: &mut Validation) {
        v.check(self.requests_per_second > 0, "requests_per_second", "a number greater than 0");
        v.check(self.burst > 0, "burst", "a number greater than 0");
    }
}

/// `http.openapi`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OpenApiConfig {
    /// Serve the document and the UI (default on).
    pub enabled: bool,
    /// Path of the OpenAPI 3 document (default `/openapi.json`).
    pub path: String,
    /// Path of the Swagger UI, bundled for offline use (default `/docs`).
    pub docs_path: String,
}

impl Default for OpenApiConfig {
    fn default() -> Self {
        Self { enabled: true, path: "/openapi.json".to_owned(), docs_path: "/docs".to_owned() }
    }
}

impl Validate for OpenApiConfig {
    fn validate(&self, v: &mut Validation) {
        v.check(self.path.starts_with('/'), "path", "a path starting with /");
        v.check(
            self.docs_path.starts_with('/') && self.docs_path.len() > 1,
            "docs_path",
            "a path starting with /, other than /",
        );
    }
}

/// Whether `path` matches one of `patterns` (exact, or a prefix when the pattern ends with `*`).
pub fn path_matches(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => p == path,
    })
}

//! The `cache` configuration section.

use std::time::Duration;

use microframework_core::{Validate, Validation};
use serde::Deserialize;

/// The `cache` section.
///
/// ```yaml
/// cache:
///   provider: redis            # memory (default) | redis
///   url: redis://127.0.0.1:6379
///   default_ttl: 5m
///   negative_ttl: 30s          # how long "not found" is cached (0s: not at all)
///   jitter: 0.1                # TTLs vary by ±10 % so that entries do not expire together
///   timeout: 200ms             # per operation; an outage costs a request at most this
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// `memory` (in-process, the default) or `redis`.
    pub provider: String,
    /// The Redis URL (`redis://[:password@]host:6379[/db]`); required for `redis`.
    pub url: Option<String>,
    /// The TTL of `set` and `get_or_load` without one.
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,
    /// How long a load that found nothing is remembered; `0s` turns negative caching off.
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// The fraction by which TTLs vary at random (0 to 0.5).
    pub jitter: f64,
    /// Prepended to every key (default: the service name and `:`), so that services can share
    /// a Redis.
    pub key_prefix: String,
    /// The most entries the in-process cache keeps.
    pub max_entries: u64,
    /// How long one Redis operation may take before it counts as a miss.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            provider: "memory".into(),
            url: None,
            default_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(30),
            jitter: 0.1,
            key_prefix: String::new(),
            max_entries: 100_000,
            timeout: Duration::from_millis(200),
        }
    }
}

/// Every provider name `cache.provider` accepts, with the facade feature that compiles it.
pub const PROVIDERS: &[(&str, &str)] = &[("memory", "cache"), ("redis", "cache-redis")];

impl Validate for CacheConfig {
    fn validate(&self, v: &mut Validation) {
        let names: Vec<&str> = PROVIDERS.iter().map(|(p, _)| *p).collect();
        match PROVIDERS.iter().find(|(p, _)| *p == self.provider) {
            None => v.error("provider", format!("one of {}; found `{}`", names.join(", "), self.provider)),
            Some((p, feature)) if !crate::provider_compiled(p) => v.error(
                "provider",
                format!("a provider compiled into this service; `{p}` needs the `{feature}` feature of the microframework crate"),
            ),
            Some(_) => {}
        }
        if self.provider == "redis" {
            match &self.url {
                None => v.error("url", "the Redis URL, such as redis://127.0.0.1:6379"),
                Some(url) if !(url.starts_with("redis://") || url.starts_with("rediss://")) => {
                    v.error("url", format!("a redis:// or rediss:// URL; found `{}`", crate::redact(url)));
                }
                Some(_) => {}
            }
        }
        v.check(!self.default_ttl.is_zero(), "default_ttl", "a duration above zero, such as 5m");
        v.check(
            self.jitter.is_finite() && (0.0..=0.5).contains(&self.jitter),
            "jitter",
            "a fraction from 0 to 0.5, such as 0.1",
        );
        v.check(self.max_entries >= 1, "max_entries", "a number of at least 1");
        v.check(
            !self.timeout.is_zero() && self.timeout <= Duration::from_secs(10),
            "timeout",
            "a duration above zero and at most 10s, such as 200ms",
        );
    }
}

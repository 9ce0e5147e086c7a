//! Caching for MicroFramework services: one [`Cache`] over memory (moka, the default) or Redis.
//!
//! - get, set with a TTL (with jitter), delete, multi-get, and get-or-load with single flight
//!   (one load per key however many callers miss at once) and negative caching;
//! - values through serde (JSON);
//! - metrics: `cache_requests_total` (hit/miss), `cache_loads_total`, `cache_errors_total`;
//! - a cache outage never fails a request: reads fall through to the loader, writes are skipped,
//!   and readiness shows the cache as `degraded` while staying up.
//!
//! See `docs/cache.md`.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod cache;
mod config;
mod plugin;
#[cfg(feature = "redis")]
mod redis_store;
mod store;

use std::sync::Arc;

pub use cache::{CACHE_ERRORS, CACHE_LOADS, CACHE_REQUESTS, Cache};
pub use config::{CacheConfig, PROVIDERS};
pub use plugin::CachePlugin;
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;
pub use store::{CacheError, CacheStore, MemoryStore};

/// Whether `provider` is compiled into this build.
pub(crate) fn provider_compiled(provider: &str) -> bool {
    provider == "memory" || (cfg!(feature = "redis") && provider == "redis")
}

/// The store `config` describes (a Redis store connects lazily).
///
/// # Errors
///
/// The provider is not compiled in, or the URL is not a Redis URL.
pub fn store_for(config: &CacheConfig) -> Result<Arc<dyn CacheStore>, CacheError> {
    match config.provider.as_str() {
        #[cfg(feature = "redis")]
        "redis" => {
            Ok(Arc::new(RedisStore::new(config.url.as_deref().unwrap_or("redis://127.0.0.1:6379"), config.timeout)?))
        }
        "memory" => Ok(Arc::new(MemoryStore::new(config.max_entries))),
        other => Err(CacheError::Backend {
            provider: "memory",
            reason: format!("the `{other}` cache provider is not compiled into this service"),
        }),
    }
}

/// `url` without the password of its user info.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

//! The provider seam ([`CacheStore`]) and the in-process store ([`MemoryStore`]).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use moka::Expiry;

/// Why a cache operation failed. [`Cache`](crate::Cache) never passes it on to a request: it
/// counts it, logs it, and carries on as on a miss.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The cache server did not answer or refused.
    #[error("{provider}: {reason}")]
    Backend {
        /// The provider.
        provider: &'static str,
        /// What the client said.
        reason: String,
    },
    /// The operation took longer than `cache.timeout`.
    #[error("{provider}: no answer within {timeout:?}")]
    Timeout {
        /// The provider.
        provider: &'static str,
        /// The limit.
        timeout: Duration,
    },
}

/// Where cached bytes live.
#[async_trait]
pub trait CacheStore: Send + Sync + 'static {
    /// The provider's name (`memory`, `redis`).
    fn provider(&self) -> &'static str;

    /// The value of `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError>;

    /// The values of `keys`, in order. The default asks one by one.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    /// Stores `value` under `key` for `ttl`.
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError>;

    /// Removes `key`.
    async fn delete(&self, key: &str) -> Result<(), CacheError>;

    /// Whether the store answers (readiness, as a degraded check).
    async fn ping(&self) -> Result<(), CacheError>;
}

/// The in-process store (moka): bounded by entry count, each entry with its own TTL. Nothing is
/// shared between replicas.
#[derive(Clone)]
pub struct MemoryStore {
    cache: moka::future::Cache<String, Entry>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").field("entries", &self.cache.entry_count()).finish()
    }
}

#[derive(Clone)]
struct Entry {
    value: Bytes,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl MemoryStore {
    /// A store of at most `max_entries` entries (the least recently used go first).
    pub fn new(max_entries: u64) -> Self {
        Self { cache: moka::future::Cache::builder().max_capacity(max_entries).expire_after(PerEntryTtl).build() }
    }
}

#[async_trait]
impl CacheStore for MemoryStore {
    fn provider(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(self.cache.get(key).await.map(|e| e.value))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        self.cache.insert(key.to_owned(), Entry { value, ttl }).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.cache.invalidate(key).await;
        Ok(())
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}

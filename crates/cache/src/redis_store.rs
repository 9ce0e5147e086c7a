//! Redis (`cache.provider: redis`, feature `redis`).
//!
//! One multiplexed connection through redis' connection manager, which reconnects by itself
//! (with backoff) after the server restarts; it connects lazily, so a Redis that is down at
//! start-up delays nothing. Every operation is bounded by `cache.timeout`: an outage costs a
//! request at most that, then it carries on as on a miss.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::store::{CacheError, CacheStore};

/// The Redis store.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    timeout: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

fn backend(e: impl std::fmt::Display) -> CacheError {
    CacheError::Backend { provider: "redis", reason: e.to_string() }
}

impl RedisStore {
    /// A store for the server at `url` (`redis://[:password@]host:6379[/db]`); each operation
    /// gives up after `timeout`. Nothing is connected yet.
    ///
    /// # Errors
    ///
    /// `url` is not a Redis URL.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(backend)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(backend)?;
        Ok(Self { conn, timeout })
    }

    async fn run<T, F>(&self, op: F) -> Result<T, CacheError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(outcome) => outcome.map_err(backend),
            Err(_) => Err(CacheError::Timeout { provider: "redis", timeout: self.timeout }),
        }
    }
}

#[async_trait]
impl CacheStore for RedisStore {
    fn provider(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let mut conn = self.conn.clone();
        let value: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(key).query_async(&mut conn)).await?;
        Ok(value.map(Bytes::from))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let values: Vec<Option<Vec<u8>>> = self.run(redis::cmd("MGET").arg(keys).query_async(&mut conn)).await?;
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(redis::cmd("SET").arg(key).arg(value.as_ref()).arg("PX").arg(millis).query_async::<()>(&mut conn))
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        self.run(redis::cmd("DEL").arg(key).query_async::<()>(&mut conn)).await
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let pong: String = self.run(redis::cmd("PING").query_async(&mut conn)).await?;
        if pong == "PONG" { Ok(()) } else { Err(backend(format!("PING answered `{pong}`"))) }
    }
}

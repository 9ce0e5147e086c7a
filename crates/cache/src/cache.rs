//! [`Cache`]: typed get/set/delete, get-or-load with single flight, TTL jitter, negative caching,
//! multi-get and metrics, over any [`CacheStore`], never failing the caller.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use metrics::counter;
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::config::CacheConfig;
use crate::store::{CacheError, CacheStore};

/// Counter: lookups by `cache` and `result` (`hit`, `miss`).
pub const CACHE_REQUESTS: &str = "cache_requests_total";
/// Counter: loader runs of `get_or_load` by `cache` and `outcome` (`ok`, `error`).
pub const CACHE_LOADS: &str = "cache_loads_total";
/// Counter: store failures by `cache` and `operation` (`get`, `set`, `delete`); each one was
/// answered as a miss or skipped.
pub const CACHE_ERRORS: &str = "cache_errors_total";

/// A stored value: a tag byte, then JSON.
const VALUE: u8 = b'v';
/// A stored absence (negative caching): the loader found nothing.
const ABSENT: u8 = b'n';

type Flight = Arc<OnceCell<Bytes>>;

/// A cache. Cloning is cheap; the plugin provides one (`ctx.require::<Cache>()`).
///
/// No method returns a store error: a failing store (Redis down) makes reads misses (so
/// `get_or_load` calls the loader) and skips writes, counts the failure in
/// `cache_errors_total`, and logs it; after a failure the store is left alone for a second, so
/// that an outage costs a request the store's timeout at most once a second. Values are JSON
/// through serde.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    store: Arc<dyn CacheStore>,
    prefix: String,
    default_ttl: Duration,
    negative_ttl: Duration,
    jitter: f64,
    flights: Mutex<HashMap<String, Flight>>,
    /// After a store failure, the store is left alone until then (milliseconds since `epoch`):
    /// during an outage a request pays the store's timeout once a second, not on every call.
    open_until: AtomicU64,
    epoch: Instant,
}

/// How long the store is left alone after it failed.
const BREAK: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.inner.name)
            .field("provider", &self.inner.store.provider())
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A cache named `name` (its metrics label) on `store`, with `config`'s TTLs, jitter and key
    /// prefix.
    pub fn new(name: impl Into<String>, store: Arc<dyn CacheStore>, config: &CacheConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.into(),
                store,
                prefix: config.key_prefix.clone(),
                default_ttl: config.default_ttl,
                negative_ttl: config.negative_ttl,
                jitter: config.jitter,
                flights: Mutex::new(HashMap::new()),
                open_until: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
        }
    }

    /// The store's provider.
    pub fn provider(&self) -> &'static str {
        self.inner.store.provider()
    }

    /// Whether the store answers (asked even while failed operations leave it alone).
    ///
    /// # Errors
    ///
    /// What the store said.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.inner.store.ping().await
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.prefix)
    }

    fn ttl(&self, ttl: Duration) -> Duration {
        if self.inner.jitter <= 0.0 {
            return ttl;
        }
        ttl.mul_f64(rand::rng().random_range(1.0 - self.inner.jitter..=1.0 + self.inner.jitter))
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the store failed less than [`BREAK`] ago (it is skipped meanwhile).
    fn broken(&self) -> bool {
        self.now_ms() < self.inner.open_until.load(Ordering::Relaxed)
    }

    fn failed(&self, operation: &'static str, key: &str, e: &CacheError) {
        let until = self.now_ms().saturating_add(u64::try_from(BREAK.as_millis()).unwrap_or(1000));
        self.inner.open_until.store(until, Ordering::Relaxed);
        counter!(CACHE_ERRORS, "cache" => self.inner.name.clone(), "operation" => operation).increment(1);
        tracing::warn!(cache = %self.inner.name, operation, key, error = %e, "cache unavailable; carrying on without it");
    }

    fn counted(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        counter!(CACHE_REQUESTS, "cache" => self.inner.name.clone(), "result" => result).increment(1);
    }

    /// The raw entry: `None` on a miss or a store failure.
    async fn lookup(&self, key: &str) -> Option<Bytes> {
        if self.broken() {
            self.counted(false);
            return None;
        }
        match self.inner.store.get(&self.key(key)).await {
            Ok(found) => {
                self.counted(found.is_some());
                found
            }
            Err(e) => {
                self.failed("get", key, &e);
                self.counted(false);
                None
            }
        }
    }

    async fn put(&self, key: &str, bytes: Bytes, ttl: Duration) {
        if self.broken() {
            return;
        }
        if let Err(e) = self.inner.store.set(&self.key(key), bytes, self.ttl(ttl)).await {
            self.failed("set", key, &e);
        }
    }

    /// The value of `key`; `None` when absent, expired, negatively cached, unreadable as `T`, or
    /// when the store fails.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        decode(self.lookup(key).await?).flatten()
    }

    /// The values of `keys`, in order (one round trip on Redis).
    pub async fn get_many<T: DeserializeOwned>(&self, keys: &[&str]) -> Vec<Option<T>> {
        if self.broken() {
            keys.iter().for_each(|_| self.counted(false));
            return keys.iter().map(|_| None).collect();
        }
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        match self.inner.store.get_many(&full).await {
            Ok(values) => values
                .into_iter()
                .map(|v| {
                    self.counted(v.is_some());
                    v.and_then(decode).flatten()
                })
                .collect(),
            Err(e) => {
                self.failed("get", keys.first().copied().unwrap_or_default(), &e);
                keys.iter().map(|_| None).collect()
            }
        }
    }

    /// Stores `value` under `key` for `ttl` (the configured `default_ttl` when `None`), give or
    /// take the jitter. Skipped (and counted) when the store fails or `value` does not serialise.
    pub async fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T, ttl: Option<Duration>) {
        match encode(value) {
            Ok(bytes) => self.put(key, bytes, ttl.unwrap_or(self.inner.default_ttl)).await,
            Err(e) => {
                tracing::warn!(cache = %self.inner.name, key, error = %e, "value not cached: it does not serialise")
            }
        }
    }

    /// Removes `key` (after a write to what it caches). A store failure is counted and logged;
    /// the entry then expires with its TTL.
    pub async fn delete(&self, key: &str) {
        if self.broken() {
            return;
        }
        if let Err(e) = self.inner.store.delete(&self.key(key)).await {
            self.failed("delete", key, &e);
        }
    }

    /// The value of `key`, loaded by `load` on a miss and cached for `ttl` (default
    /// `default_ttl`). Concurrent calls for one key run one load (single flight) and share its
    /// result; a load that finds nothing (`Ok(None)`) is cached as absent for `negative_ttl`
    /// (unless zero); a load that fails is not cached and its error returned. A failing store
    /// only makes every call a load.
    ///
    /// # Errors
    ///
    /// The loader's error.
    pub async fn get_or_load<T, E, F, Fut>(&self, key: &str, ttl: Option<Duration>, load: F) -> Result<Option<T>, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        if let Some(bytes) = self.lookup(key).await
            && let Some(found) = decode::<T>(bytes)
        {
            return Ok(found);
        }
        let flight = {
            let mut flights = self.inner.flights.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            flights.entry(key.to_owned()).or_default().clone()
        };
        let mut loaded: Option<Option<T>> = None;
        let outcome = flight
            .get_or_try_init(|| async {
                let value = load().await;
                let outcome = if value.is_ok() { "ok" } else { "error" };
                counter!(CACHE_LOADS, "cache" => self.inner.name.clone(), "outcome" => outcome).increment(1);
                let value = value?;
                let (bytes, ttl) = match &value {
                    Some(v) => match encode(v) {
                        Ok(bytes) => (Some(bytes), ttl.unwrap_or(self.inner.default_ttl)),
                        Err(_) => (None, Duration::ZERO),
                    },
                    None => (Some(Bytes::from_static(&[ABSENT])), self.inner.negative_ttl),
                };
                let shared = bytes.clone().unwrap_or_else(|| Bytes::from_static(&[ABSENT]));
                if let Some(bytes) = bytes
                    && !ttl.is_zero()
                {
                    self.put(key, bytes, ttl).await;
                }
                loaded = Some(value);
                Ok::<_, E>(shared)
            })
            .await
            .cloned();
        {
            let mut flights = self.inner.flights.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if flights.get(key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                flights.remove(key);
            }
        }
        let shared = outcome?;
        match loaded {
            // This call ran the load.
            Some(value) => Ok(value),
            // Another call did: take its result.
            None => Ok(decode::<T>(shared).flatten()),
        }
    }
}

/// `Some(Some(value))`, `Some(None)` for a cached absence, `None` when unreadable.
fn decode<T: DeserializeOwned>(bytes: Bytes) -> Option<Option<T>> {
    match bytes.first() {
        Some(&VALUE) => serde_json::from_slice(&bytes[1..]).ok().map(Some),
        Some(&ABSENT) => Some(None),
        _ => None,
    }
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, serde_json::Error> {
    let mut out = BytesMut::with_capacity(64).writer();
    out.get_mut().put_u8(VALUE);
    serde_json::to_writer(&mut out, value)?;
    Ok(out.into_inner().freeze())
}

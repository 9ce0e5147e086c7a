//! The [`CachePlugin`]: the cache as a plugin of the service.

use std::sync::Arc;
use std::time::Duration;

use microframework_core::{AppContext, BoxError, HealthCheck, Plugin, PluginContext, Probe};

use crate::cache::Cache;
use crate::config::CacheConfig;
use crate::store::CacheStore;

/// The cache as a plugin: it owns the `cache` section ([`CacheConfig`]), provides the [`Cache`]
/// (`ctx.require::<Cache>()`), and registers a non-critical readiness check `cache`: a cache
/// outage shows as `degraded` in `/health/ready` and leaves the service ready.
///
/// ```no_run
/// use microframework_cache::CachePlugin;
/// let plugin = CachePlugin::new();
/// ```
#[derive(Debug, Default)]
pub struct CachePlugin {}

impl CachePlugin {
    /// The plugin.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Plugin for CachePlugin {
    type Config = CacheConfig;

    fn name(&self) -> &str {
        "cache"
    }

    fn section(&self) -> Option<&str> {
        Some("cache")
    }

    fn build(self, mut config: CacheConfig, cx: &mut PluginContext<'_>) -> Result<(), BoxError> {
        if config.key_prefix.is_empty() {
            config.key_prefix = format!("{}:", cx.app().name());
        }
        let store = crate::store_for(&config)?;
        let cache = Cache::new("default", store, &config);
        cx.app().provide(cache.clone());
        let timeout = config.timeout.max(Duration::from_millis(500));
        cx.health_check(
            HealthCheck::readiness("cache", move || {
                let cache = cache.clone();
                async move { cache.ping().await.map_err(|e| e.to_string()) }
            })
            .timeout(timeout)
            .non_critical(),
        );
        Ok(())
    }

    /// Pings the store within 2 s.
    fn probe(&self, config: &CacheConfig, _app: &AppContext) -> Option<Probe> {
        let mut config = config.clone();
        config.timeout = config.timeout.max(Duration::from_secs(2));
        Some(Box::pin(async move {
            let store: Arc<dyn CacheStore> = crate::store_for(&config).map_err(|e| e.to_string())?;
            store.ping().await.map_err(|e| e.to_string())?;
            Ok(match &config.url {
                Some(url) => format!("reached {} at {}", config.provider, crate::redact(url)),
                None => format!("{} cache", config.provider),
            })
        }))
    }
}

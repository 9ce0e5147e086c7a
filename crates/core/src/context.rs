//! The context shared by components, handlers and background tasks.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::config::ConfigHandle;
use crate::error::{Error, ErrorKind};
use crate::features::FeatureFlags;
use crate::health::HealthRegistry;
use crate::lifecycle::Lifecycle;

/// Everything a running service shares: its name, live configuration, health registry,
/// lifecycle, feature flags and the resources that components provide (a database pool, a
/// cache client, ...). Cloning is cheap.
#[derive(Clone)]
pub struct AppContext {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    config: ConfigHandle,
    health: HealthRegistry,
    lifecycle: Lifecycle,
    features: FeatureFlags,
    resources: RwLock<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for AppContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppContext")
            .field("name", &self.inner.name)
            .field("state", &self.inner.lifecycle.state())
            .finish()
    }
}

impl AppContext {
    /// A context for the service `name`.
    pub fn new(name: impl Into<String>, config: ConfigHandle) -> Self {
        let flags = config.current().get("features").unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                name: name.into(),
                config,
                health: HealthRegistry::new(),
                lifecycle: Lifecycle::new(),
                features: FeatureFlags::new(flags),
                resources: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// The service name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The live configuration.
    pub fn config(&self) -> &ConfigHandle {
        &self.inner.config
    }

    /// The health registry.
    pub fn health(&self) -> &HealthRegistry {
        &self.inner.health
    }

    /// The lifecycle (state and shutdown token).
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.inner.lifecycle
    }

    /// Feature flags from the `features` section, kept current on reload.
    pub fn features(&self) -> &FeatureFlags {
        &self.inner.features
    }

    /// Shares a resource (for example a database pool) under its type, replacing any previous one.
    pub fn provide<T: Any + Send + Sync>(&self, value: T) {
        self.inner.resources.write().unwrap_or_else(|p| p.into_inner()).insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// The resource of type `T`, if provided.
    pub fn get<T: Any + Send + Sync + Clone>(&self) -> Option<T> {
        let resources = self.inner.resources.read().unwrap_or_else(|p| p.into_inner());
        resources.get(&TypeId::of::<T>()).and_then(|r| r.downcast_ref::<T>()).cloned()
    }

    /// The resource of type `T`, provided first by `init` when there is none yet; concurrent
    /// callers get the same value.
    pub fn get_or_provide_with<T: Any + Send + Sync + Clone>(&self, init: impl FnOnce() -> T) -> T {
        if let Some(value) = self.get::<T>() {
            return value;
        }
        let mut resources = self.inner.resources.write().unwrap_or_else(|p| p.into_inner());
        let entry = resources.entry(TypeId::of::<T>()).or_insert_with(|| Arc::new(init()));
        match entry.downcast_ref::<T>() {
            Some(value) => value.clone(),
            None => unreachable!("resources are keyed by their TypeId"),
        }
    }

    /// The resource of type `T`, or an error naming the type when no component provided it.
    pub fn require<T: Any + Send + Sync + Clone>(&self) -> Result<T, Error> {
        self.get::<T>().ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                format!("no `{}` is available: enable the component that provides it", std::any::type_name::<T>()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigSources};

    #[test]
    fn resources_by_type() {
        let cfg = Config::from_yaml("features:\n  beta: true\n").unwrap();
        let ctx = AppContext::new("svc", ConfigHandle::new(ConfigSources::new(), cfg));
        assert!(ctx.get::<String>().is_none());
        assert!(ctx.require::<String>().unwrap_err().message().contains("String"));
        assert_eq!(ctx.get_or_provide_with(|| 7u32), 7);
        assert_eq!(ctx.get_or_provide_with(|| 8u32), 7, "the first value stays");
        ctx.provide("pool".to_owned());
        assert_eq!(ctx.get::<String>().as_deref(), Some("pool"));
        assert!(ctx.features().is_enabled("beta"));
        assert!(!ctx.features().is_enabled("gamma"));
    }
}

//! Feature flags from the `features` configuration section, updated on hot reload.
//!
//! ```yaml
//! features:
//!   new-checkout: true
//!   beta-search: false
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

/// Live feature flags. Cloning is cheap; every clone sees reloads.
#[derive(Clone, Debug, Default)]
pub struct FeatureFlags {
    flags: Arc<ArcSwap<BTreeMap<String, bool>>>,
}

impl FeatureFlags {
    /// Flags with the given initial values.
    pub fn new(flags: BTreeMap<String, bool>) -> Self {
        Self { flags: Arc::new(ArcSwap::from_pointee(flags)) }
    }

    /// Whether `name` is enabled; unknown flags are disabled.
    pub fn is_enabled(&self, name: &str) -> bool {
        self.flags.load().get(name).copied().unwrap_or(false)
    }

    /// All flags and their values.
    pub fn all(&self) -> BTreeMap<String, bool> {
        (**self.flags.load()).clone()
    }

    /// Replaces every flag (called on reload).
    pub fn replace(&self, flags: BTreeMap<String, bool>) {
        self.flags.store(Arc::new(flags));
    }
}

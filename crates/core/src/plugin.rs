//! Plugins: the seam every integration plugs into.
//!
//! A [`Plugin`] is what an integration crate (gRPC, GraphQL, WebSocket, a database, a cache, a
//! broker, or a crate of your own) gives a service. It has a name, the configuration section it
//! owns with a typed, validated config, the plugins it depends on, and a build step that
//! registers, through the [`PluginContext`], what the integration brings:
//!
//! - components with a lifecycle ([`PluginContext::component`]), started in dependency order
//!   before the service serves and stopped in reverse order after it has drained;
//! - readiness and liveness checks ([`PluginContext::health_check`]);
//! - shared resources that other plugins and handlers `require` ([`AppContext::provide`]);
//! - shutdown hooks ([`PluginContext::on_shutdown`]), run once the listeners have drained;
//! - protocol parts held in typed slots ([`PluginContext::slot`]): HTTP routes, tower layers and
//!   extra listeners (`microframework_http::HttpParts`), gRPC services, and whatever slot a
//!   future protocol crate defines. The crate that owns a slot type decides what it means; the
//!   service builder reads it after every plugin has been built.
//!
//! Building registers and does no I/O: connecting happens in components' `start`, so that
//! `--check-config` can validate every plugin's section without touching the network. A plugin
//! that connects to something outside the process also gives a [`Probe`]
//! ([`Plugin::probe`]): `--check-dependencies` runs every plugin's probe, and nothing else, to
//! tell whether the service could reach its dependencies with this configuration.
//!
//! ```
//! use microframework_core::{async_trait, AppContext, BoxError, Component, Validate, Validation};
//! use microframework_core::plugin::{Plugin, PluginContext};
//!
//! #[derive(serde::Deserialize, Default)]
//! #[serde(default, deny_unknown_fields)]
//! struct GreeterConfig {
//!     greeting: String,
//! }
//!
//! impl Validate for GreeterConfig {
//!     fn validate(&self, v: &mut Validation) {
//!         v.check(self.greeting.len() <= 64, "greeting", "at most 64 characters");
//!     }
//! }
//!
//! struct Greeter;
//!
//! impl Plugin for Greeter {
//!     type Config = GreeterConfig;
//!     fn name(&self) -> &str { "greeter" }
//!     fn section(&self) -> Option<&str> { Some("greeter") }
//!     fn build(self, config: GreeterConfig, cx: &mut PluginContext<'_>) -> Result<(), BoxError> {
//!         cx.app().provide(Greeting(config.greeting));
//!         Ok(())
//!     }
//! }
//!
//! #[derive(Clone)]
//! struct Greeting(String);
//! ```

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;

use crate::component::{Component, ComponentSet, OrderError, resolve_order};
use crate::config::{ConfigError, ConfigHandle, Validate};
use crate::context::AppContext;
use crate::error::BoxError;
use crate::health::HealthCheck;

/// An integration: a name, the configuration section it owns, the plugins it depends on, and a
/// build step that registers what it brings (see the [module documentation](self)).
///
/// Add plugins to a service with `Service::plugin`. Build steps run in dependency order, once
/// the configuration has loaded and every plugin's section has been validated together with the
/// framework's own sections (so one run reports every problem, each with key, source and
/// expectation). An error from `build` stops start-up; the message names the plugin.
pub trait Plugin: Send + 'static {
    /// The typed configuration of [`section`](Self::section): `#[serde(default)]` so that a
    /// missing section means defaults, [`Validate`] for the checks serde cannot express. Use
    /// [`NoConfig`] for a plugin without a section.
    type Config: DeserializeOwned + Validate + Default + Send + 'static;

    /// A unique name, used in errors, logs and other plugins' [`dependencies`](Self::dependencies).
    fn name(&self) -> &str;

    /// The configuration section the plugin owns (a dotted key such as `grpc` or `cache.redis`),
    /// or `None` when it has none. Two plugins cannot own the same section.
    fn section(&self) -> Option<&str>;

    /// Names of plugins that must be built (and whose components must start) before this one.
    fn dependencies(&self) -> Vec<String> {
        Vec::new()
    }

    /// Registers what the plugin brings, given its validated section.
    fn build(self, config: Self::Config, cx: &mut PluginContext<'_>) -> Result<(), BoxError>;

    /// A one-shot check that what the plugin connects to answers with `config`: connect, ping,
    /// disconnect, bounded to a few seconds. `Ok` says what was reached (never a secret), `Err`
    /// why not, in one sentence that names the fix where it can. `--check-dependencies` (and
    /// `microframework doctor` inside a service) run the probes without starting any component
    /// or listener. `None`, the default, for a plugin that connects to nothing.
    fn probe(&self, config: &Self::Config, app: &AppContext) -> Option<Probe> {
        let _ = (config, app);
        None
    }
}

/// A plugin's one-shot dependency check (see [`Plugin::probe`]): what it reached, or why not.
pub type Probe = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// The configuration of a plugin without a section.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
pub struct NoConfig {}

impl Validate for NoConfig {}

/// A shutdown hook: runs once the listeners have drained, before components stop.
pub type ShutdownHook = Box<dyn FnOnce(AppContext) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// What a plugin's build step registers through.
pub struct PluginContext<'a> {
    app: &'a AppContext,
    plugin: &'a str,
    components: &'a mut ComponentSet,
    slots: &'a mut Slots,
    hooks: &'a mut Vec<(String, ShutdownHook)>,
    /// Components registered by the plugin's dependencies (directly or not): this plugin's
    /// components start after them.
    after: &'a [String],
    registered: Vec<String>,
}

impl fmt::Debug for PluginContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginContext").field("plugin", &self.plugin).finish_non_exhaustive()
    }
}

impl PluginContext<'_> {
    /// The service's context: name, live configuration, health registry, lifecycle and shared
    /// resources ([`AppContext::provide`], [`AppContext::require`]).
    pub fn app(&self) -> &AppContext {
        self.app
    }

    /// The name of the plugin being built.
    pub fn plugin(&self) -> &str {
        self.plugin
    }

    /// Registers a component. It starts after the components of this plugin's dependencies (and
    /// after those it names itself), before the service serves; it stops in reverse order.
    pub fn component(&mut self, component: impl Component) {
        self.registered.push(component.name().to_owned());
        self.components.add(Box::new(After { inner: Box::new(component), after: self.after.to_vec() }));
    }

    /// Registers a readiness or liveness check ([`HealthCheck::readiness`],
    /// [`HealthCheck::liveness`]); it appears on `/health/ready` or `/health/live`.
    pub fn health_check(&mut self, check: HealthCheck) {
        self.app.health().register(check);
    }

    /// Registers a hook that runs once the listeners have stopped and in-flight work has
    /// drained, before components stop. Hooks run in reverse registration order, each within
    /// `shutdown.component_timeout`.
    pub fn on_shutdown<F, Fut>(&mut self, hook: F)
    where
        F: FnOnce(AppContext) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.push((self.plugin.to_owned(), Box::new(move |ctx| Box::pin(hook(ctx)))));
    }

    /// The slot of type `T`, created empty on first use. Protocol crates define slot types
    /// (`microframework_http::HttpParts` holds HTTP routes, layers and listeners) and the
    /// service reads them once every plugin is built.
    pub fn slot<T: Default + Send + 'static>(&mut self) -> &mut T {
        self.slots.get_or_default::<T>()
    }
}

/// Typed slots that plugins fill and the service builder reads.
#[derive(Default)]
pub struct Slots {
    slots: HashMap<TypeId, Box<dyn Any + Send>>,
}

impl fmt::Debug for Slots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slots").field("len", &self.slots.len()).finish()
    }
}

impl Slots {
    /// The slot of type `T`, created empty on first use.
    pub fn get_or_default<T: Default + Send + 'static>(&mut self) -> &mut T {
        let slot = self.slots.entry(TypeId::of::<T>()).or_insert_with(|| Box::new(T::default()));
        match slot.downcast_mut::<T>() {
            Some(slot) => slot,
            None => unreachable!("slots are keyed by their TypeId"),
        }
    }

    /// Takes the slot of type `T` out (empty when no plugin used it).
    pub fn take<T: Default + Send + 'static>(&mut self) -> T {
        match self.slots.remove(&TypeId::of::<T>()).map(|b| b.downcast::<T>()) {
            Some(Ok(slot)) => *slot,
            _ => T::default(),
        }
    }
}

/// A component that starts after the components of its plugin's dependencies.
struct After {
    inner: Box<dyn Component>,
    after: Vec<String>,
}

#[async_trait]
impl Component for After {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn dependencies(&self) -> Vec<String> {
        let mut deps = self.inner.dependencies();
        for a in &self.after {
            if !deps.contains(a) {
                deps.push(a.clone());
            }
        }
        deps
    }

    async fn start(&mut self, ctx: &AppContext) -> Result<(), BoxError> {
        self.inner.start(ctx).await
    }

    async fn stop(&mut self, ctx: &AppContext) -> Result<(), BoxError> {
        self.inner.stop(ctx).await
    }
}

/// Why the plugins could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum PluginError {
    /// A plugin's build step failed.
    Build {
        /// The plugin's name.
        plugin: String,
        /// What it returned.
        source: BoxError,
    },
    /// A plugin depends on one that was not added.
    MissingDependency {
        /// The dependent plugin.
        plugin: String,
        /// The plugin it needs.
        dependency: String,
    },
    /// The plugins depend on each other in a cycle.
    Cycle(Vec<String>),
    /// Two plugins share a name.
    Duplicate(String),
    /// Two plugins own the same configuration section (two databases, say).
    SectionClaimed {
        /// The section.
        section: String,
        /// The plugin that owns it.
        first: String,
        /// The plugin that claims it too.
        second: String,
    },
}

impl PluginError {
    /// The plugin the error is about.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            Self::Build { plugin, .. } | Self::MissingDependency { plugin, .. } => Some(plugin),
            Self::Duplicate(name) => Some(name),
            Self::SectionClaimed { second, .. } => Some(second),
            Self::Cycle(_) => None,
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Build { plugin, source } => {
                write!(f, "plugin `{plugin}` failed to build: {source}")?;
                let mut cause = source.source();
                while let Some(c) = cause {
                    write!(f, ": {c}")?;
                    cause = c.source();
                }
                Ok(())
            }
            Self::MissingDependency { plugin, dependency } => write!(
                f,
                "plugin `{plugin}` depends on plugin `{dependency}`, which the service does not add: add it with \
                 `Service::plugin` (or the matching `Service::...` call) before starting"
            ),
            Self::Cycle(names) => write!(f, "plugins depend on each other in a cycle: {}", names.join(" -> ")),
            Self::Duplicate(name) => write!(f, "the plugin `{name}` is added twice; add each integration once"),
            Self::SectionClaimed { section, first, second } => write!(
                f,
                "plugins `{first}` and `{second}` both own the configuration section `{section}`; a service has one \
                 of each (give the second its own section if it supports one)"
            ),
        }
    }
}

impl std::error::Error for PluginError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Build { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// A plugin with its config type erased, so that plugins of every kind fit one list.
trait ErasedPlugin: Send {
    fn name(&self) -> &str;
    fn section(&self) -> Option<&str>;
    fn dependencies(&self) -> Vec<String>;
    fn validate(&self, config: &ConfigHandle) -> Result<(), ConfigError>;
    fn build(self: Box<Self>, cx: &mut PluginContext<'_>) -> Result<(), BoxError>;
    fn probe(&self, app: &AppContext) -> Result<Option<Probe>, ConfigError>;
}

impl<P: Plugin> ErasedPlugin for P {
    fn name(&self) -> &str {
        Plugin::name(self)
    }

    fn section(&self) -> Option<&str> {
        Plugin::section(self)
    }

    fn dependencies(&self) -> Vec<String> {
        Plugin::dependencies(self)
    }

    fn validate(&self, config: &ConfigHandle) -> Result<(), ConfigError> {
        match Plugin::section(self) {
            Some(key) => config.section::<P::Config>(key).map(drop),
            None => Ok(()),
        }
    }

    fn build(self: Box<Self>, cx: &mut PluginContext<'_>) -> Result<(), BoxError> {
        let config = match Plugin::section(&*self) {
            // Registered for validation on every reload, too.
            Some(key) => cx.app.config().section::<P::Config>(key)?,
            None => P::Config::default(),
        };
        Plugin::build(*self, config, cx)
    }

    fn probe(&self, app: &AppContext) -> Result<Option<Probe>, ConfigError> {
        let config = match Plugin::section(self) {
            Some(key) => app.config().section::<P::Config>(key)?,
            None => P::Config::default(),
        };
        Ok(Plugin::probe(self, &config, app))
    }
}

/// The plugins of a service, in the order they were added until [`PluginSet::build`] orders them.
#[derive(Default)]
pub struct PluginSet {
    plugins: Vec<Box<dyn ErasedPlugin>>,
}

impl fmt::Debug for PluginSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// What the plugins registered.
#[derive(Default)]
pub struct BuiltPlugins {
    /// Their components (with the service's own), to start in dependency order.
    pub components: ComponentSet,
    /// Their slots, for the protocol crates' owners to read.
    pub slots: Slots,
    /// Their shutdown hooks, as (plugin, hook), in registration order.
    pub shutdown_hooks: Vec<(String, ShutdownHook)>,
}

impl fmt::Debug for BuiltPlugins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuiltPlugins")
            .field("components", &self.components)
            .field("shutdown_hooks", &self.shutdown_hooks.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for dyn ErasedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl BuiltPlugins {
    /// Runs the shutdown hooks in reverse registration order, each within `timeout`.
    pub async fn run_shutdown_hooks(hooks: Vec<(String, ShutdownHook)>, ctx: &AppContext, timeout: Duration) {
        for (plugin, hook) in hooks.into_iter().rev() {
            if tokio::time::timeout(timeout, hook(ctx.clone())).await.is_err() {
                tracing::error!(plugin = %plugin, "shutdown hook did not finish within {timeout:?}");
            }
        }
    }
}

impl PluginSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a plugin.
    pub fn add(&mut self, plugin: impl Plugin) {
        self.plugins.push(Box::new(plugin));
    }

    /// The plugins' names, in the current order.
    pub fn names(&self) -> Vec<String> {
        self.plugins.iter().map(|p| p.name().to_owned()).collect()
    }

    /// Whether a plugin named `name` has been added.
    pub fn contains(&self, name: &str) -> bool {
        self.plugins.iter().any(|p| p.name() == name)
    }

    /// Checks names and sections (each unique) and validates every plugin's section, collecting
    /// every configuration problem into one error.
    pub fn validate(&self, config: &ConfigHandle) -> Result<(), ValidateError> {
        self.check_unique()?;
        let mut all: Option<ConfigError> = None;
        for p in &self.plugins {
            if let Err(e) = p.validate(config) {
                match &mut all {
                    Some(a) => a.extend(e),
                    None => all = Some(e),
                }
            }
        }
        match all {
            Some(e) => Err(ValidateError::Config(e)),
            None => Ok(()),
        }
    }

    /// The plugins' dependency probes ([`Plugin::probe`]), as (plugin, probe), in the order the
    /// plugins were added; plugins without one are left out. Nothing runs until the probes are
    /// awaited.
    ///
    /// # Errors
    ///
    /// The configuration problems of every plugin's section, as [`PluginSet::validate`].
    pub fn probes(&self, app: &AppContext) -> Result<Vec<(String, Probe)>, ValidateError> {
        self.validate(app.config())?;
        let mut out = Vec::new();
        for p in &self.plugins {
            if let Some(probe) = p.probe(app).map_err(ValidateError::Config)? {
                out.push((p.name().to_owned(), probe));
            }
        }
        Ok(out)
    }

    fn check_unique(&self) -> Result<(), PluginError> {
        let mut names = HashSet::new();
        let mut sections: HashMap<&str, &str> = HashMap::new();
        for p in &self.plugins {
            if !names.insert(p.name()) {
                return Err(PluginError::Duplicate(p.name().to_owned()));
            }
            if let Some(section) = p.section()
                && let Some(first) = sections.insert(section, p.name())
            {
                return Err(PluginError::SectionClaimed {
                    section: section.to_owned(),
                    first: first.to_owned(),
                    second: p.name().to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Builds every plugin in dependency order, adding to `components` and `slots` (which may
    /// already hold the service's own). A plugin's section is read (and registered for
    /// validation on reload) just before its build step.
    pub fn build(self, app: &AppContext, components: ComponentSet, slots: Slots) -> Result<BuiltPlugins, PluginError> {
        self.check_unique()?;
        let names = self.names();
        let (deps, order) =
            resolve_order(&names, self.plugins.iter().map(|p| p.dependencies()).collect()).map_err(|e| match e {
                OrderError::Missing { item, dependency } => {
                    PluginError::MissingDependency { plugin: names[item].clone(), dependency }
                }
                OrderError::Cycle(cycle) => PluginError::Cycle(cycle.into_iter().map(|i| names[i].clone()).collect()),
            })?;

        let mut built = BuiltPlugins { components, slots, shutdown_hooks: Vec::new() };
        // The components each plugin registered, and those of everything it depends on.
        let mut registered: Vec<Vec<String>> = vec![Vec::new(); names.len()];
        let mut upstream: Vec<Vec<String>> = vec![Vec::new(); names.len()];
        let mut slots: Vec<Option<Box<dyn ErasedPlugin>>> = self.plugins.into_iter().map(Some).collect();
        for i in order {
            let Some(plugin) = slots[i].take() else { continue };
            let mut after = Vec::new();
            for &d in &deps[i] {
                for name in registered[d].iter().chain(&upstream[d]) {
                    if !after.contains(name) {
                        after.push(name.clone());
                    }
                }
            }
            let name = names[i].clone();
            let mut cx = PluginContext {
                app,
                plugin: &name,
                components: &mut built.components,
                slots: &mut built.slots,
                hooks: &mut built.shutdown_hooks,
                after: &after,
                registered: Vec::new(),
            };
            tracing::debug!(plugin = %name, "building plugin");
            plugin.build(&mut cx).map_err(|source| PluginError::Build { plugin: name.clone(), source })?;
            registered[i] = std::mem::take(&mut cx.registered);
            upstream[i] = after;
        }
        Ok(built)
    }
}

/// Why the plugins' configuration is not acceptable.
#[derive(Debug)]
#[non_exhaustive]
pub enum ValidateError {
    /// Problems in the plugins' sections, each with key, source and expectation.
    Config(ConfigError),
    /// Two plugins share a name or a section.
    Plugin(PluginError),
}

impl From<PluginError> for ValidateError {
    fn from(e: PluginError) -> Self {
        Self::Plugin(e)
    }
}

impl fmt::Display for ValidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => e.fmt(f),
            Self::Plugin(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ValidateError {}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::config::{Config, ConfigSources, Validation};

    type Log = Arc<Mutex<Vec<String>>>;

    #[derive(serde::Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct ProbeConfig {
        size: u32,
    }

    impl Validate for ProbeConfig {
        fn validate(&self, v: &mut Validation) {
            v.check(self.size <= 10, "size", "at most 10");
        }
    }

    struct Probe {
        name: &'static str,
        deps: Vec<String>,
        log: Log,
        fail: bool,
    }

    struct ProbeComponent {
        name: String,
        log: Log,
    }

    #[async_trait]
    impl Component for ProbeComponent {
        fn name(&self) -> &str {
            &self.name
        }
        async fn start(&mut self, _: &AppContext) -> Result<(), BoxError> {
            self.log.lock().unwrap().push(format!("start {}", self.name));
            Ok(())
        }
        async fn stop(&mut self, _: &AppContext) -> Result<(), BoxError> {
            self.log.lock().unwrap().push(format!("stop {}", self.name));
            Ok(())
        }
    }

    #[derive(Default)]
    struct Seen(Vec<String>);

    impl Plugin for Probe {
        type Config = ProbeConfig;
        fn name(&self) -> &str {
            self.name
        }
        fn section(&self) -> Option<&str> {
            Some(self.name)
        }
        fn dependencies(&self) -> Vec<String> {
            self.deps.clone()
        }
        fn build(self, config: ProbeConfig, cx: &mut PluginContext<'_>) -> Result<(), BoxError> {
            if self.fail {
                return Err("no broker address".into());
            }
            self.log.lock().unwrap().push(format!("build {} size={}", self.name, config.size));
            cx.slot::<Seen>().0.push(self.name.to_owned());
            cx.component(ProbeComponent { name: format!("{}-conn", self.name), log: self.log.clone() });
            Ok(())
        }
    }

    fn probe(name: &'static str, deps: &[&str], log: &Log) -> Probe {
        Probe { name, deps: deps.iter().map(|d| (*d).to_owned()).collect(), log: log.clone(), fail: false }
    }

    fn ctx(yaml: &str) -> AppContext {
        AppContext::new("t", ConfigHandle::new(ConfigSources::new(), Config::from_yaml(yaml).unwrap()))
    }

    #[tokio::test]
    async fn builds_in_dependency_order_and_components_follow() {
        let log = Log::default();
        let mut set = PluginSet::new();
        // Added in the wrong order on purpose: `cache` needs `db`, `api` needs `cache`.
        set.add(probe("api", &["cache"], &log));
        set.add(probe("cache", &["db"], &log));
        set.add(probe("db", &[], &log));
        let ctx = ctx("db:\n  size: 3\n");
        set.validate(ctx.config()).unwrap();
        let mut built = set.build(&ctx, ComponentSet::new(), Slots::default()).unwrap();
        assert_eq!(built.slots.take::<Seen>().0, ["db", "cache", "api"]);
        // Components do not name each other; the plugins' dependencies order them.
        built.components.start_all(&ctx).await.unwrap();
        built.components.stop_all(&ctx, Duration::from_secs(1)).await;
        assert_eq!(
            *log.lock().unwrap(),
            [
                "build db size=3",
                "build cache size=0",
                "build api size=0",
                "start db-conn",
                "start cache-conn",
                "start api-conn",
                "stop api-conn",
                "stop cache-conn",
                "stop db-conn",
            ]
        );
    }

    /// A plugin that reaches `host`, or fails to.
    struct Pinger;

    #[derive(serde::Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct PingerConfig {
        host: String,
    }

    impl Validate for PingerConfig {
        fn validate(&self, v: &mut Validation) {
            v.check(!self.host.contains(' '), "host", "a host name");
        }
    }

    impl Plugin for Pinger {
        type Config = PingerConfig;
        fn name(&self) -> &str {
            "pinger"
        }
        fn section(&self) -> Option<&str> {
            Some("pinger")
        }
        fn build(self, _: PingerConfig, _: &mut PluginContext<'_>) -> Result<(), BoxError> {
            Ok(())
        }
        fn probe(&self, config: &PingerConfig, _: &AppContext) -> Option<super::Probe> {
            let host = config.host.clone();
            Some(Box::pin(async move {
                if host == "up" { Ok(format!("reached {host}")) } else { Err(format!("{host} does not answer")) }
            }))
        }
    }

    #[tokio::test]
    async fn probes_come_from_the_plugins_that_have_one_with_their_sections() {
        let log = Log::default();
        let mut set = PluginSet::new();
        set.add(probe("a", &[], &log));
        set.add(Pinger);
        let probes = set.probes(&ctx("pinger:\n  host: up\n")).unwrap();
        assert_eq!(probes.len(), 1, "only the plugin with a probe");
        let (name, run) = probes.into_iter().next().unwrap();
        assert_eq!((name.as_str(), run.await), ("pinger", Ok("reached up".to_owned())));
        let (_, run) = set.probes(&ctx("pinger:\n  host: down\n")).unwrap().pop().unwrap();
        assert_eq!(run.await, Err("down does not answer".to_owned()));
        // Nothing was built or started to probe.
        assert!(log.lock().unwrap().is_empty());
        let e = set.probes(&ctx("pinger:\n  host: a b\n")).err().unwrap().to_string();
        assert!(e.contains("pinger.host"), "{e}");
    }

    #[test]
    fn every_section_problem_is_reported_at_once() {
        let log = Log::default();
        let mut set = PluginSet::new();
        set.add(probe("a", &[], &log));
        set.add(probe("b", &[], &log));
        let ctx = ctx("a:\n  size: 11\nb:\n  size: nope\n");
        let text = set.validate(ctx.config()).unwrap_err().to_string();
        assert!(text.contains("a.size") && text.contains("at most 10"), "{text}");
        assert!(text.contains("b.size"), "{text}");
    }

    #[test]
    fn bad_sets_are_named() {
        let log = Log::default();
        let ctx = ctx("");
        let mut set = PluginSet::new();
        set.add(probe("a", &["missing"], &log));
        let e = set.build(&ctx, ComponentSet::new(), Slots::default()).unwrap_err();
        assert!(e.to_string().contains("plugin `a` depends on plugin `missing`"), "{e}");

        let mut set = PluginSet::new();
        set.add(probe("a", &["b"], &log));
        set.add(probe("b", &["a"], &log));
        let e = set.build(&ctx, ComponentSet::new(), Slots::default()).unwrap_err();
        assert!(matches!(e, PluginError::Cycle(_)), "{e}");

        let mut set = PluginSet::new();
        set.add(probe("a", &[], &log));
        set.add(probe("a", &[], &log));
        assert!(set.validate(ctx.config()).unwrap_err().to_string().contains("added twice"));

        let mut set = PluginSet::new();
        set.add(Probe { fail: true, ..probe("broker", &[], &log) });
        let e = set.build(&ctx, ComponentSet::new(), Slots::default()).unwrap_err();
        assert_eq!(e.to_string(), "plugin `broker` failed to build: no broker address");
        assert_eq!(e.plugin(), Some("broker"));
    }

    #[test]
    fn sections_are_owned_once() {
        struct Db(&'static str);
        impl Plugin for Db {
            type Config = NoConfig;
            fn name(&self) -> &str {
                self.0
            }
            fn section(&self) -> Option<&str> {
                Some("database")
            }
            fn build(self, _: NoConfig, _: &mut PluginContext<'_>) -> Result<(), BoxError> {
                Ok(())
            }
        }
        let mut set = PluginSet::new();
        set.add(Db("postgres"));
        set.add(Db("mysql"));
        let text = set.validate(ctx("").config()).unwrap_err().to_string();
        assert!(text.contains("`postgres` and `mysql` both own the configuration section `database`"), "{text}");
    }
}

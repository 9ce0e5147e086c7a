//! Components: pieces of a service with a lifecycle, started in dependency order and stopped in
//! reverse order.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::context::AppContext;
use crate::error::BoxError;

/// A part of a service with a start-up and a shutdown: a database pool, a broker connection,
/// a background worker, ...
///
/// `start` reads the component's configuration section, connects, registers health checks and
/// shares resources through [`AppContext::provide`]. It returns errors instead of panicking: the
/// service reports them, naming the component, and exits non-zero.
///
/// ```
/// use microframework_core::{async_trait, AppContext, BoxError, Component};
/// struct Warmup;
/// #[async_trait]
/// impl Component for Warmup {
///     fn name(&self) -> &str { "warmup" }
///     fn dependencies(&self) -> Vec<String> { vec!["database".into()] }
///     async fn start(&mut self, ctx: &AppContext) -> Result<(), BoxError> { Ok(()) }
/// }
/// ```
#[async_trait]
pub trait Component: Send + Sync + 'static {
    /// A unique name, used in logs, errors and dependency declarations.
    fn name(&self) -> &str;

    /// Names of components that must start before this one.
    fn dependencies(&self) -> Vec<String> {
        Vec::new()
    }

    /// Starts the component.
    async fn start(&mut self, ctx: &AppContext) -> Result<(), BoxError>;

    /// Stops the component (close pools, flush buffers). Called in reverse start order.
    async fn stop(&mut self, ctx: &AppContext) -> Result<(), BoxError> {
        let _ = ctx;
        Ok(())
    }
}

/// A component failed to start, or the components cannot be ordered.
#[derive(Debug)]
pub enum StartError {
    /// The named component's `start` returned an error.
    Component {
        /// The component's name.
        component: String,
        /// What it returned.
        source: BoxError,
    },
    /// A component depends on one that is not registered.
    MissingDependency {
        /// The dependent component.
        component: String,
        /// The missing dependency.
        dependency: String,
    },
    /// The dependencies form a cycle.
    Cycle(Vec<String>),
    /// Two components share a name.
    Duplicate(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Component { component, source } => {
                write!(f, "component `{component}` failed to start: {source}")?;
                let mut cause = source.source();
                while let Some(c) = cause {
                    write!(f, ": {c}")?;
                    cause = c.source();
                }
                Ok(())
            }
            Self::MissingDependency { component, dependency } => {
                write!(f, "component `{component}` depends on `{dependency}`, which is not registered")
            }
            Self::Cycle(names) => write!(f, "components depend on each other in a cycle: {}", names.join(" -> ")),
            Self::Duplicate(name) => write!(f, "two components are named `{name}`"),
        }
    }
}

impl std::error::Error for StartError {}

/// An ordered set of components.
#[derive(Default)]
pub struct ComponentSet {
    components: Vec<Box<dyn Component>>,
    started: usize,
}

impl fmt::Debug for ComponentSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.components.iter().map(|c| c.name().to_owned())).finish()
    }
}

impl ComponentSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a component.
    pub fn add(&mut self, component: Box<dyn Component>) {
        self.components.push(component);
    }

    /// Names, in the current order.
    pub fn names(&self) -> Vec<String> {
        self.components.iter().map(|c| c.name().to_owned()).collect()
    }

    /// Sorts the components so that each comes after its dependencies (stable otherwise).
    pub fn order(&mut self) -> Result<(), StartError> {
        let names: Vec<String> = self.names();
        let mut seen = HashSet::new();
        for n in &names {
            if !seen.insert(n.clone()) {
                return Err(StartError::Duplicate(n.clone()));
            }
        }
        let deps = self.components.iter().map(|c| c.dependencies()).collect();
        let (_, order) = resolve_order(&names, deps).map_err(|e| match e {
            OrderError::Missing { item, dependency } => {
                StartError::MissingDependency { component: names[item].clone(), dependency }
            }
            OrderError::Cycle(cycle) => StartError::Cycle(cycle.into_iter().map(|i| names[i].clone()).collect()),
        })?;
        let mut slots: Vec<Option<Box<dyn Component>>> = self.components.drain(..).map(Some).collect();
        self.components = order.into_iter().filter_map(|i| slots[i].take()).collect();
        Ok(())
    }

    /// Orders and starts every component. On failure, the components already started are
    /// stopped in reverse order and the error names the failing component.
    pub async fn start_all(&mut self, ctx: &AppContext) -> Result<(), StartError> {
        self.order()?;
        for i in 0..self.components.len() {
            let name = self.components[i].name().to_owned();
            tracing::debug!(component = %name, "starting component");
            if let Err(source) = self.components[i].start(ctx).await {
                self.stop_all(ctx, Duration::from_secs(10)).await;
                return Err(StartError::Component { component: name, source });
            }
            self.started = i + 1;
            tracing::debug!(component = %name, "component started");
        }
        Ok(())
    }

    /// Stops the started components in reverse order, each within `timeout`. Errors are logged;
    /// every component gets its chance to stop.
    pub async fn stop_all(&mut self, ctx: &AppContext, timeout: Duration) {
        while self.started > 0 {
            self.started -= 1;
            let component = &mut self.components[self.started];
            let name = component.name().to_owned();
            match tokio::time::timeout(timeout, component.stop(ctx)).await {
                Ok(Ok(())) => tracing::debug!(component = %name, "component stopped"),
                Ok(Err(e)) => tracing::error!(component = %name, "component failed to stop cleanly: {e}"),
                Err(_) => tracing::error!(component = %name, "component did not stop within {timeout:?}"),
            }
        }
    }
}

/// Why items cannot be ordered by [`resolve_order`].
pub(crate) enum OrderError {
    /// Item `item` depends on a name that is not in the set.
    Missing {
        /// The dependent item's index.
        item: usize,
        /// The name it depends on.
        dependency: String,
    },
    /// The items at these indexes depend on each other in a cycle (the first repeated at the end).
    Cycle(Vec<usize>),
}

/// Resolves each item's dependencies (`deps[i]`, by name) to indexes into `names`, then orders the
/// items with [`dependency_order`]. Returns the resolved dependencies and the order.
pub(crate) fn resolve_order(
    names: &[String],
    deps: Vec<Vec<String>>,
) -> Result<(Vec<Vec<usize>>, Vec<usize>), OrderError> {
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let deps: Vec<Vec<usize>> = deps
        .into_iter()
        .enumerate()
        .map(|(item, ds)| {
            ds.into_iter()
                .map(|d| index.get(d.as_str()).copied().ok_or(OrderError::Missing { item, dependency: d }))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;
    let order = dependency_order(&deps).map_err(OrderError::Cycle)?;
    Ok((deps, order))
}

/// Orders items so that each comes after the items it depends on (`deps[i]` holds the indexes
/// item `i` depends on); the order is stable otherwise. A cycle is returned as the indexes along
/// it, the first repeated at the end.
fn dependency_order(deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    // Depth-first topological sort; 0 = unvisited, 1 = in progress, 2 = done.
    fn visit(
        i: usize,
        deps: &[Vec<usize>],
        mark: &mut [u8],
        order: &mut Vec<usize>,
        path: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match mark[i] {
            2 => return Ok(()),
            1 => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(i);
                return Err(cycle);
            }
            _ => {}
        }
        mark[i] = 1;
        path.push(i);
        for &d in &deps[i] {
            visit(d, deps, mark, order, path)?;
        }
        path.pop();
        mark[i] = 2;
        order.push(i);
        Ok(())
    }
    let mut mark = vec![0u8; deps.len()];
    let mut order = Vec::with_capacity(deps.len());
    for i in 0..deps.len() {
        let mut path = Vec::new();
        visit(i, deps, &mut mark, &mut order, &mut path)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::config::{Config, ConfigHandle, ConfigSources};

    struct Probe {
        name: &'static str,
        deps: Vec<String>,
        fail: bool,
        log: Arc<Mutex<Vec<String>>>,
    }

    #[async_trait]
    impl Component for Probe {
        fn name(&self) -> &str {
            self.name
        }
        fn dependencies(&self) -> Vec<String> {
            self.deps.clone()
        }
        async fn start(&mut self, _: &AppContext) -> Result<(), BoxError> {
            if self.fail {
                return Err("connection refused".into());
            }
            self.log.lock().unwrap().push(format!("start {}", self.name));
            Ok(())
        }
        async fn stop(&mut self, _: &AppContext) -> Result<(), BoxError> {
            self.log.lock().unwrap().push(format!("stop {}", self.name));
            Ok(())
        }
    }

    fn ctx() -> AppContext {
        AppContext::new("t", ConfigHandle::new(ConfigSources::new(), Config::from_yaml("").unwrap()))
    }

    fn probe(name: &'static str, deps: &[&str], fail: bool, log: &Arc<Mutex<Vec<String>>>) -> Box<dyn Component> {
        Box::new(Probe { name, deps: deps.iter().map(|s| s.to_string()).collect(), fail, log: log.clone() })
    }

    #[tokio::test]
    async fn starts_in_dependency_order_and_stops_in_reverse() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut set = ComponentSet::new();
        set.add(probe("api", &["cache", "db"], false, &log));
        set.add(probe("cache", &["db"], false, &log));
        set.add(probe("db", &[], false, &log));
        let ctx = ctx();
        set.start_all(&ctx).await.unwrap();
        set.stop_all(&ctx, Duration::from_secs(1)).await;
        assert_eq!(*log.lock().unwrap(), ["start db", "start cache", "start api", "stop api", "stop cache", "stop db"]);
    }

    #[tokio::test]
    async fn failure_names_component_and_stops_started_ones() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut set = ComponentSet::new();
        set.add(probe("db", &[], false, &log));
        set.add(probe("broker", &["db"], true, &log));
        let err = set.start_all(&ctx()).await.unwrap_err();
        assert_eq!(err.to_string(), "component `broker` failed to start: connection refused");
        assert_eq!(*log.lock().unwrap(), ["start db", "stop db"]);
    }

    #[tokio::test]
    async fn cycles_and_missing_dependencies_are_errors() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut set = ComponentSet::new();
        set.add(probe("a", &["b"], false, &log));
        set.add(probe("b", &["a"], false, &log));
        assert!(matches!(set.order(), Err(StartError::Cycle(_))));
        let mut set = ComponentSet::new();
        set.add(probe("a", &["nope"], false, &log));
        assert_eq!(set.order().unwrap_err().to_string(), "component `a` depends on `nope`, which is not registered");
        let mut set = ComponentSet::new();
        set.add(probe("a", &[], false, &log));
        set.add(probe("a", &[], false, &log));
        assert!(matches!(set.order(), Err(StartError::Duplicate(_))));
    }
}

//! # maintenance-mode
//!
//! An example of a third-party MicroFramework plugin, kept in the framework's repository and
//! built and tested by its CI. It depends on the `microframework` facade only, as a crate
//! published by someone else would; `docs/plugins.md` walks through it.
//!
//! [`MaintenancePlugin`] owns the `maintenance` configuration section ([`MaintenanceConfig`]).
//! While `maintenance.enabled` is on, the service's own routes answer `503` with a problem+json
//! body and `Retry-After`; the framework's endpoints (`/health/*`, `/metrics`, `/openapi.json`)
//! and the paths in `maintenance.allow_paths` keep working. The switch follows configuration
//! reloads (edit `configs/config.yaml`, or `APP_MAINTENANCE__ENABLED` and a restart) and the
//! shared [`Maintenance`] handle (`ctx.require::<Maintenance>()`), so an admin handler can
//! flip it at run time. `GET /maintenance` reports the state. With
//! `maintenance.fail_readiness`, readiness fails while it is on, so load balancers route
//! elsewhere.
//!
//! ```no_run
//! use maintenance_mode::MaintenancePlugin;
//! use microframework::prelude::*;
//!
//! # async fn run() -> std::process::ExitCode {
//! Service::new("orders").plugin(MaintenancePlugin::new()).run().await
//! # }
//! ```
//!
//! What it shows of the plugin seam: a typed, validated section; a shared resource; a component
//! with a lifecycle (the reload watcher, started before the service serves and stopped after it
//! drains); a readiness check; an HTTP route and a tower layer; a shutdown hook.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use microframework::axum::extract::{Request, State};
use microframework::axum::http::{HeaderValue, header};
use microframework::axum::middleware::{self, Next};
use microframework::axum::response::{IntoResponse, Response};
use microframework::axum::{Json, Router, routing::get};
use microframework::core::{
    AppContext, BoxError, Component, ErrorKind, HealthCheck, Plugin, PluginContext, ProblemDetails, Validate,
    Validation, async_trait,
};
use microframework::http::{HttpParts, problem_response};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

/// The section the plugin owns.
pub const SECTION: &str = "maintenance";

/// The `maintenance` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Answer the service's routes with `503` (default `false`). Follows reloads.
    pub enabled: bool,
    /// The problem's `detail` (one line, at most 200 characters).
    pub message: String,
    /// The `Retry-After` the answers carry, 1 s to 24 h (default `60s`).
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// Paths still served while it is on: exact, or a prefix ending in `*` (default none).
    pub allow_paths: Vec<String>,
    /// Fail readiness while it is on, so that load balancers route elsewhere (default `false`).
    pub fail_readiness: bool,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            message: "The service is down for maintenance; retry later.".to_owned(),
            retry_after: Duration::from_secs(60),
            allow_paths: Vec::new(),
            fail_readiness: false,
        }
    }
}

impl Validate for MaintenanceConfig {
    fn validate(&self, v: &mut Validation) {
        v.check(
            !self.message.trim().is_empty() && self.message.chars().count() <= 200,
            "message",
            "a text of 1 to 200 characters",
        );
        v.check(!self.message.chars().any(char::is_control), "message", "a single line without control characters");
        v.check(
            (Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&self.retry_after),
            "retry_after",
            "a duration from 1s to 24h, such as 60s",
        );
        for (i, p) in self.allow_paths.iter().enumerate() {
            v.check(p.starts_with('/'), &format!("allow_paths[{i}]"), "a path starting with `/`");
        }
    }
}

/// The shared switch: `ctx.require::<Maintenance>()`. Cloning is cheap.
#[derive(Clone, Debug, Default)]
pub struct Maintenance {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    enabled: AtomicBool,
    settings: RwLock<MaintenanceConfig>,
}

impl Maintenance {
    fn new(config: MaintenanceConfig) -> Self {
        let m = Self::default();
        m.apply(config);
        m
    }

    /// Whether maintenance mode is on.
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::Acquire)
    }

    /// Switches maintenance mode on or off until the next configuration change.
    pub fn set_enabled(&self, on: bool) {
        self.inner.enabled.store(on, Ordering::Release);
        tracing::info!(enabled = on, "maintenance mode switched");
    }

    /// The settings in effect.
    pub fn settings(&self) -> MaintenanceConfig {
        let mut s = self.inner.settings.read().unwrap_or_else(|p| p.into_inner()).clone();
        s.enabled = self.is_enabled();
        s
    }

    fn apply(&self, config: MaintenanceConfig) {
        let on = config.enabled;
        *self.inner.settings.write().unwrap_or_else(|p| p.into_inner()) = config;
        self.inner.enabled.store(on, Ordering::Release);
    }

    fn allows(&self, path: &str) -> bool {
        let settings = self.inner.settings.read().unwrap_or_else(|p| p.into_inner());
        settings.allow_paths.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == p,
        })
    }
}

/// The plugin; see the [crate documentation](crate).
#[derive(Debug, Default)]
pub struct MaintenancePlugin {
    _private: (),
}

impl MaintenancePlugin {
    /// The plugin, reading section `maintenance`.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Plugin for MaintenancePlugin {
    type Config = MaintenanceConfig;

    fn name(&self) -> &str {
        "maintenance"
    }

    fn section(&self) -> Option<&str> {
        Some(SECTION)
    }

    fn build(self, config: MaintenanceConfig, cx: &mut PluginContext<'_>) -> Result<(), BoxError> {
        let switch = Maintenance::new(config);
        cx.app().provide(switch.clone());
        cx.component(Watcher { switch: switch.clone(), task: None });
        let probe = switch.clone();
        cx.health_check(HealthCheck::readiness("maintenance", move || {
            let settings = probe.settings();
            async move {
                if settings.enabled && settings.fail_readiness { Err("in maintenance".to_owned()) } else { Ok(()) }
            }
        }));
        let (route, layer) = (switch.clone(), switch.clone());
        HttpParts::of(cx)
            .router(move |_| Ok(Router::new().route("/maintenance", get(status)).with_state(route)))
            .layer(middleware::from_fn_with_state(layer, guard));
        cx.on_shutdown(|_| async {
            tracing::debug!("maintenance plugin: service drained");
        });
        Ok(())
    }
}

/// `GET /maintenance`: the state and settings in effect.
async fn status(State(switch): State<Maintenance>) -> Json<MaintenanceConfig> {
    Json(switch.settings())
}

/// The layer around the service's routes: `503` while maintenance mode is on.
async fn guard(State(switch): State<Maintenance>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if !switch.is_enabled() || path == "/maintenance" || switch.allows(path) {
        return next.run(request).await;
    }
    let settings = switch.settings();
    let mut response = problem_response(ProblemDetails::new(ErrorKind::Unavailable, settings.message));
    if let Ok(v) = HeaderValue::from_str(&settings.retry_after.as_secs().to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response.into_response()
}

/// Applies the section on every accepted configuration reload, from start-up until shutdown.
struct Watcher {
    switch: Maintenance,
    task: Option<JoinHandle<()>>,
}

#[async_trait]
impl Component for Watcher {
    fn name(&self) -> &str {
        "maintenance-watcher"
    }

    async fn start(&mut self, ctx: &AppContext) -> Result<(), BoxError> {
        let mut changes = ctx.config().subscribe();
        let token = ctx.lifecycle().shutdown_token();
        let switch = self.switch.clone();
        self.task = Some(tokio::spawn(async move {
            let mut current = switch.settings();
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    changed = changes.changed() => {
                        if changed.is_err() { break }
                        let config = changes.borrow_and_update().clone();
                        // Reloads are validated before they are accepted (the section is registered).
                        if let Ok(next) = config.section::<MaintenanceConfig>(SECTION)
                            && next != current
                        {
                            tracing::info!(enabled = next.enabled, "maintenance settings reloaded");
                            switch.apply(next.clone());
                            current = next;
                        }
                    }
                }
            }
        }));
        Ok(())
    }

    async fn stop(&mut self, _: &AppContext) -> Result<(), BoxError> {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        Ok(())
    }
}

//! The service builder: configuration, telemetry, components, HTTP and graceful shutdown.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::task::JoinHandle;
use utoipa_axum::router::OpenApiRouter;

use microframework_auth::AuthConfig;
use microframework_core::plugin::{BuiltPlugins, Slots, ValidateError};
use microframework_core::{
    AppContext, BoxError, Component, ComponentSet, ConfigError, ConfigHandle, ConfigSources, Plugin, PluginError,
    PluginSet, ServiceState, ShutdownConfig, StartError,
};
use microframework_http::parts::PartError;
use microframework_http::server::ServeOutcome;
use microframework_http::{AppBuilder, HttpConfig, HttpParts, ServerConfig, axum, utoipa_axum};
use microframework_telemetry::{LogHandle, LoggingConfig, Metrics, MetricsConfig};

use crate::cli::Flags;

/// Connections the admin listener serves at once (scrapers and probes, not clients).
const ADMIN_MAX_CONNECTIONS: usize = 256;

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// Invalid command-line flags.
    #[error("{0}")]
    Flags(String),
    /// Invalid configuration: every problem, each with key, source and expectation.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Logging or metrics could not be set up.
    #[error("telemetry: {0}")]
    Telemetry(#[from] microframework_telemetry::TelemetryError),
    /// A component failed to start (the message names it).
    #[error("{0}")]
    Component(#[from] StartError),
    /// A plugin could not be built, or the plugins cannot be ordered (the message names it).
    #[error("{0}")]
    Plugin(#[from] PluginError),
    /// What a plugin added failed once components had started: its routes, or its listener.
    #[error("plugin `{plugin}` failed to start: {source}")]
    PluginStart {
        /// The plugin's name.
        plugin: String,
        /// What failed.
        source: BoxError,
    },
    /// The HTTP listener could not be bound.
    #[error("{0}")]
    Bind(#[from] microframework_http::server::BindError),
    /// Building the routes failed.
    #[error("building the HTTP application failed: {0}")]
    Http(BoxError),
}

impl StartupError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Flags(_) | Self::Config(_) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }

    /// A configuration error stays one (exit code 2) whichever plugin reported it.
    fn from_plugin(e: PluginError) -> Self {
        match e {
            PluginError::Build { plugin, source } => match source.downcast::<ConfigError>() {
                Ok(config) => Self::Config(*config),
                Err(source) => Self::Plugin(PluginError::Build { plugin, source }),
            },
            e => Self::Plugin(e),
        }
    }

    fn from_part(e: PartError) -> Self {
        match e.source.downcast::<ConfigError>() {
            Ok(config) => Self::Config(*config),
            Err(source) => match e.owner {
                Some(plugin) => Self::PluginStart { plugin, source },
                None => Self::Http(source),
            },
        }
    }
}

impl From<ValidateError> for StartupError {
    fn from(e: ValidateError) -> Self {
        match e {
            ValidateError::Config(e) => Self::Config(e),
            ValidateError::Plugin(e) => Self::Plugin(e),
            _ => Self::Http(e.to_string().into()),
        }
    }
}

/// A MicroFramework service: name it, add plugins, components and routes, then [`Service::run`].
///
/// Integrations are plugins ([`Service::plugin`]); `Service::grpc`, `Service::graphql`,
/// `Service::websocket` and `Service::database` are shorthands for their plugins.
pub struct Service {
    name: String,
    version: String,
    components: ComponentSet,
    plugins: PluginSet,
    http: HttpParts,
    sources: Option<ConfigSources>,
    args: Option<Vec<OsString>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("plugins", &self.plugins)
            .field("components", &self.components)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service named `name` (used in logs, metrics and the default SQLite file name).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: "0.0.0".to_owned(),
            components: ComponentSet::new(),
            plugins: PluginSet::new(),
            http: HttpParts::default(),
            sources: None,
            args: None,
        }
    }

    /// The version shown in the OpenAPI document and logs (pass `env!("CARGO_PKG_VERSION")`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Adds a plugin: an integration that owns a configuration section and registers
    /// components, health checks, routes, layers, listeners and shared resources (see
    /// [`microframework_core::plugin`] and `docs/plugins.md`). Plugins are built in dependency
    /// order once the configuration is loaded and validated; a plugin's section is validated
    /// with the framework's, and `--check-config` checks it too.
    pub fn plugin(mut self, plugin: impl Plugin) -> Self {
        self.plugins.add(plugin);
        self
    }

    /// Adds a component; components start in dependency order before the HTTP server.
    pub fn component(mut self, component: impl Component) -> Self {
        self.components.add(Box::new(component));
        self
    }

    /// Adds documented routes, built once components have started.
    pub fn api<F>(mut self, build: F) -> Self
    where
        F: FnOnce(&AppContext) -> Result<OpenApiRouter, BoxError> + Send + 'static,
    {
        self.http.own().api(build);
        self
    }

    /// Adds a plain axum router (not in the OpenAPI document), built once components have started.
    pub fn router<F>(mut self, build: F) -> Self
    where
        F: FnOnce(&AppContext) -> Result<Router, BoxError> + Send + 'static,
    {
        self.http.own().router(build);
        self
    }

    /// Wraps the service's routes in any tower layer (inside the default middleware stack).
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: tower::Service<axum::extract::Request> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Response: axum::response::IntoResponse + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Error: Into<std::convert::Infallible> + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
    {
        self.http.own().layer(layer);
        self
    }

    /// Exempts `path` (exact, or a prefix ending in `*`) from `auth.jwt.required`.
    pub fn public_path(mut self, path: impl Into<String>) -> Self {
        self.http.own().public_path(path);
        self
    }

    /// Exempts the requests `rule` accepts (method, URI, headers) from `auth.jwt.required`, for
    /// what a path alone cannot tell apart. A request that carries a token is verified whatever
    /// the rule says.
    pub fn public_request<F>(mut self, rule: F) -> Self
    where
        F: Fn(&axum::http::Method, &axum::http::Uri, &axum::http::HeaderMap) -> bool + Send + Sync + 'static,
    {
        self.http.own().public_request(rule);
        self
    }

    /// Uses these configuration sources instead of the conventional ones (tests).
    pub fn config_sources(mut self, sources: ConfigSources) -> Self {
        self.sources = Some(sources);
        self
    }

    /// Parses these command-line arguments instead of the process's (the first is the program name).
    pub fn args<I, T>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        self.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Runs the service until SIGTERM or SIGINT, then shuts down gracefully.
    ///
    /// Exit codes: 0 after a clean shutdown; 2 for invalid flags or configuration; 1 when start-up
    /// fails otherwise. Errors are printed to stderr as one message naming what to fix.
    pub async fn run(self) -> ExitCode {
        let name = self.name.clone();
        let args = self.args.clone().unwrap_or_else(|| std::env::args_os().collect());
        let flags = match Flags::parse_from_args(&name, args) {
            Ok(f) => f,
            Err(e) => {
                let code = if e.use_stderr() { 2 } else { 0 };
                let _ = e.print();
                return ExitCode::from(code);
            }
        };
        if flags.version {
            println!("{name} {}", self.version);
            return ExitCode::SUCCESS;
        }
        if flags.healthcheck {
            let sources = flags.apply(self.sources.clone().unwrap_or_default());
            return match healthcheck(sources).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("unhealthy: {e}");
                    ExitCode::from(1)
                }
            };
        }
        if flags.check_config {
            let sources = flags.apply(self.sources.clone().unwrap_or_default());
            return match ConfigHandle::load(sources)
                .map_err(StartupError::from)
                .and_then(|h| validate_sections(&h, &self.plugins))
            {
                Ok(()) => {
                    println!("{name}: configuration is valid");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {name}: {e}");
                    e.exit_code()
                }
            };
        }
        if flags.check_dependencies {
            let sources = flags.apply(self.sources.clone().unwrap_or_default());
            return check_dependencies(&name, sources, &self.plugins).await;
        }
        let running = match self.start_with(flags).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {name} failed to start: {e}");
                tracing::error!("start-up failed: {e}");
                return e.exit_code();
            }
        };
        let ctx = running.context().clone();
        tokio::select! {
            _ = shutdown_signal() => tracing::info!("shutdown signal received; draining"),
            _ = ctx.lifecycle().shutdown_requested() => {}
        }
        running.shutdown().await;
        ExitCode::SUCCESS
    }

    /// Starts the service in this process (configuration from [`Service::config_sources`] or the
    /// conventional sources, no command-line parsing) and returns once it is ready.
    pub async fn start(self) -> Result<RunningService, StartupError> {
        let args = self.args.clone().unwrap_or_else(|| vec![OsString::from(self.name.clone())]);
        let flags = Flags::parse_from_args(&self.name, args).map_err(|e| StartupError::Flags(e.to_string()))?;
        self.start_with(flags).await
    }

    async fn start_with(mut self, flags: Flags) -> Result<RunningService, StartupError> {
        let started = Instant::now();
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let sources = flags.apply(self.sources.take().unwrap_or_default());
        let config = ConfigHandle::load(sources)?;
        validate_sections(&config, &self.plugins)?;
        let current = config.current();
        let logging: LoggingConfig = config.section("logging")?;
        let log = microframework_telemetry::logging::init(&self.name, &logging, current.is_prod())?;
        let metrics_cfg: MetricsConfig = config.section("metrics")?;
        let metrics = if metrics_cfg.enabled { Some(Metrics::install(&self.name, &metrics_cfg)?) } else { None };
        let server: ServerConfig = config.section("server")?;
        let shutdown: ShutdownConfig = config.section("shutdown")?;

        let ctx = AppContext::new(self.name.clone(), config.clone());
        let listener = microframework_http::server::bind(&server).await?;
        let addr = listener.local_addr().map_err(|e| StartupError::Http(e.into()))?;
        let admin_listener = microframework_http::server::bind_admin(&server).await?;
        let admin_addr = match &admin_listener {
            Some(l) => Some(l.local_addr().map_err(|e| StartupError::Http(e.into()))?),
            None => None,
        };

        // Plugins register their components and parts; the service's own routes come first.
        let mut slots = Slots::default();
        *slots.get_or_default::<HttpParts>() = std::mem::take(&mut self.http);
        let plugins = std::mem::take(&mut self.plugins);
        let BuiltPlugins { mut components, mut slots, shutdown_hooks } =
            plugins.build(&ctx, std::mem::take(&mut self.components), slots).map_err(StartupError::from_plugin)?;
        let parts = slots.take::<HttpParts>();

        if let Err(e) = components.start_all(&ctx).await {
            // A component that rejected its configuration section is a configuration error.
            if let StartError::Component { source, .. } = &e
                && let Some(config) = source.downcast_ref::<ConfigError>()
            {
                return Err(StartupError::Config(config.clone()));
            }
            return Err(e.into());
        }
        let build = async {
            // The one JWT verifier every protocol shares (one JWKS fetch and cache).
            microframework_auth::SharedJwt::init(&ctx).await.map_err(|source| PartError { owner: None, source })?;
            parts.assemble(AppBuilder::new(self.name.clone(), self.version.clone()), &ctx, metrics.clone()).await
        };
        let served = match build.await {
            Ok(served) => served,
            Err(e) => {
                components.stop_all(&ctx, shutdown.component_timeout).await;
                return Err(StartupError::from_part(e));
            }
        };
        let serving = served.serving;
        let listeners: Vec<(String, SocketAddr)> = serving
            .listeners
            .iter()
            .filter_map(|l| l.listener.local_addr().ok().map(|a| (l.name.clone(), a)))
            .collect();

        if let Err(e) = config.watch_files(ctx.lifecycle().shutdown_token()) {
            tracing::debug!(dir = %config.sources().dir.display(), "configuration hot reload is off: {e}");
        }
        follow_reloads(&ctx, log);

        // Listeners stop accepting together, and long-lived connections close, after the drain
        // delay.
        let stop_accepting = ctx.lifecycle().closing_token();
        {
            let ctx = ctx.clone();
            let delay = shutdown.drain_delay;
            tokio::spawn(async move {
                ctx.lifecycle().shutdown_requested().await;
                if !delay.is_zero() {
                    tracing::info!(?delay, "draining: readiness reports 503 while load balancers catch up");
                    tokio::time::sleep(delay).await;
                }
                ctx.lifecycle().stop_accepting();
            });
        }
        let mut others: Vec<(String, JoinHandle<std::io::Result<ServeOutcome>>)> = Vec::new();
        for l in serving.listeners {
            let stop = stop_accepting.clone().cancelled_owned();
            let task = microframework_http::server::serve_with(l.listener, l.router, stop, shutdown.timeout, l.options);
            others.push((l.name, tokio::spawn(task)));
        }
        if let Some((listener, router)) = admin_listener.zip(served.admin) {
            let stop = stop_accepting.clone().cancelled_owned();
            let options = microframework_http::server::ServeOptions::from_config(&ServerConfig {
                max_connections: ADMIN_MAX_CONNECTIONS,
                ..server.clone()
            });
            let task = microframework_http::server::serve_with(listener, router, stop, shutdown.timeout, options);
            others.push(("admin".to_owned(), tokio::spawn(task)));
        }
        let task_ctx = ctx.clone();
        let stop = stop_accepting.clone().cancelled_owned();
        let (router, options) = (serving.router, serving.options);
        let task = tokio::spawn(async move {
            let outcome =
                microframework_http::server::serve_with(listener, router, stop, shutdown.timeout, options).await;
            for (name, t) in others {
                match t.await {
                    Ok(Ok(o)) => tracing::info!(listener = %name, outcome = ?o, "listener stopped"),
                    Ok(Err(e)) => tracing::error!(listener = %name, "server error: {e}"),
                    Err(e) => tracing::error!(listener = %name, "server task failed: {e}"),
                }
            }
            task_ctx.lifecycle().set_state(ServiceState::Draining);
            BuiltPlugins::run_shutdown_hooks(shutdown_hooks, &task_ctx, shutdown.component_timeout).await;
            components.stop_all(&task_ctx, shutdown.component_timeout).await;
            task_ctx.lifecycle().set_state(ServiceState::Stopped);
            match &outcome {
                Ok(o) => tracing::info!(outcome = ?o, "service stopped"),
                Err(e) => tracing::error!("server error: {e}"),
            }
        });
        ctx.lifecycle().set_state(ServiceState::Ready);
        tracing::info!(
            service = %self.name,
            version = %self.version,
            env = %current.env(),
            address = %format!("http://{addr}"),
            admin = ?admin_addr,
            listeners = ?listeners,
            startup_ms = started.elapsed().as_millis() as u64,
            "service ready"
        );
        Ok(RunningService { addr, admin_addr, listeners, ctx, task })
    }
}

/// Reads every framework section and every plugin's section so that all problems are reported
/// together, and registers them for validation on reload.
/// `--check-dependencies`: validates the configuration, runs every plugin's probe concurrently
/// and prints `ok   NAME: what it reached` or `FAIL NAME: why not` for each, on stdout.
async fn check_dependencies(name: &str, sources: ConfigSources, plugins: &PluginSet) -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let probes = ConfigHandle::load(sources).map_err(StartupError::from).and_then(|config| {
        validate_sections(&config, plugins)?;
        Ok(plugins.probes(&AppContext::new(name.to_owned(), config))?)
    });
    let probes = match probes {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {name}: {e}");
            return e.exit_code();
        }
    };
    if probes.is_empty() {
        println!("{name}: no dependencies to check");
        return ExitCode::SUCCESS;
    }
    // Concurrently, reported in the order the plugins were added.
    let running: Vec<_> = probes.into_iter().map(|(name, probe)| (name, tokio::spawn(probe))).collect();
    let mut failed = 0;
    for (dependency, task) in running {
        let result = task.await.unwrap_or_else(|e| Err(format!("the probe failed: {e}")));
        match result {
            Ok(reached) => println!("ok   {dependency}: {reached}"),
            Err(why) => {
                failed += 1;
                println!("FAIL {dependency}: {why}");
            }
        }
    }
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn validate_sections(config: &ConfigHandle, plugins: &PluginSet) -> Result<(), StartupError> {
    let mut all: Option<ConfigError> = None;
    let mut note = |r: Result<(), ConfigError>| {
        if let Err(e) = r {
            match &mut all {
                Some(a) => a.extend(e),
                None => all = Some(e),
            }
        }
    };
    note(config.section::<LoggingConfig>("logging").map(drop));
    note(config.section::<MetricsConfig>("metrics").map(drop));
    note(config.section::<ServerConfig>("server").map(drop));
    note(config.section::<ShutdownConfig>("shutdown").map(drop));
    note(config.section::<HttpConfig>("http").map(drop));
    note(config.section::<AuthConfig>("auth").map(drop));
    note(config.section::<FeatureSection>("features").map(drop));
    match plugins.validate(config) {
        Ok(()) => {}
        Err(ValidateError::Config(e)) => note(Err(e)),
        Err(e) => return Err(e.into()),
    }
    match all {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// `features: { name: bool }`.
#[derive(serde::Deserialize, Default)]
#[serde(transparent)]
struct FeatureSection(BTreeMap<String, bool>);

impl microframework_core::Validate for FeatureSection {}

fn follow_reloads(ctx: &AppContext, log: LogHandle) {
    let mut rx = ctx.config().subscribe();
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let token = ctx.lifecycle().shutdown_token();
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                changed = rx.changed() => {
                    if changed.is_err() { break }
                    let cfg = rx.borrow_and_update().clone();
                    // RUST_LOG, when set, wins over logging.level (as it does at start-up).
                    let rust_log = std::env::var("RUST_LOG").is_ok_and(|v| !v.is_empty());
                    if !rust_log
                        && let Ok(logging) = cfg.section::<LoggingConfig>("logging")
                        && let Err(e) = log.set_level(&logging.level)
                    {
                        tracing::error!("log level not changed: {e}");
                    }
                    if let Ok(FeatureSection(flags)) = cfg.section::<FeatureSection>("features") {
                        ctx.features().replace(flags);
                    }
                }
            }
        }
    });
}

/// `GET /health/live` on the configured port of this host, with a 3 s budget.
async fn healthcheck(sources: ConfigSources) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = ConfigHandle::load(sources).map_err(|e| e.to_string())?;
    let server: ServerConfig = config.section("server").map_err(|e| e.to_string())?;
    let host = match server.host.as_str() {
        "0.0.0.0" | "localhost" => "127.0.0.1".to_owned(),
        "::" => "::1".to_owned(),
        h => h.to_owned(),
    };
    let addr = if host.contains(':') { format!("[{host}]:{}", server.port) } else { format!("{host}:{}", server.port) };
    let probe = async {
        let mut stream =
            tokio::net::TcpStream::connect(&addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let request = format!("GET /health/live HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut head = vec![0u8; 64];
        let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
        let line = String::from_utf8_lossy(&head[..n]);
        match line.split_whitespace().nth(1) {
            Some("200") => Ok(()),
            Some(code) => Err(format!("/health/live answered {code}")),
            None => Err("no HTTP response".to_owned()),
        }
    };
    tokio::time::timeout(Duration::from_secs(3), probe).await.map_err(|_| "no answer within 3s".to_owned())?
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// A started service.
pub struct RunningService {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    listeners: Vec<(String, SocketAddr)>,
    ctx: AppContext,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for RunningService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningService").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl RunningService {
    /// The address the HTTP listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the admin listener (`server.admin_port`), when it is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The address of the listener a plugin opened under `name` (`grpc`, say).
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// The address of the gRPC plugin's own listener, when gRPC has its own port: shorthand for
    /// `listener_addr("grpc")`.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.listener_addr("grpc")
    }

    /// The service context.
    pub fn context(&self) -> &AppContext {
        &self.ctx
    }

    /// Requests graceful shutdown (as SIGTERM does) and waits until everything has stopped.
    pub async fn shutdown(self) {
        self.ctx.lifecycle().shutdown();
        let _ = self.task.await;
    }

    /// Waits until the service has stopped (after [`microframework_core::Lifecycle::shutdown`]).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }

    /// Waits up to `timeout` for the service to stop; `false` if it is still running.
    pub async fn stopped_within(self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.task).await.is_ok()
    }
}

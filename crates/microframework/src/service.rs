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
use microframework_core::{
    AppContext, BoxError, Component, ComponentSet, ConfigError, ConfigHandle, ConfigSources, ServiceState,
    ShutdownConfig, StartError,
};
use microframework_http::{AppBuilder, HttpConfig, ServerConfig, axum, utoipa_axum};
use microframework_telemetry::{LogHandle, LoggingConfig, Metrics, MetricsConfig};

use crate::cli::Flags;

/// Connections the admin listener serves at once (scrapers and probes, not clients).
const ADMIN_MAX_CONNECTIONS: usize = 256;

type ApiFn = Box<dyn FnOnce(&AppContext) -> Result<OpenApiRouter, BoxError> + Send>;
type RouterFn = Box<dyn FnOnce(&AppContext) -> Result<Router, BoxError> + Send>;
type BuilderHook = Box<dyn FnOnce(AppBuilder, &AppContext) -> AppBuilder + Send>;
#[cfg(feature = "grpc")]
type GrpcFn = Box<dyn FnOnce(&AppContext) -> Result<microframework_grpc::GrpcBuilder, BoxError> + Send>;

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
    /// The HTTP listener could not be bound.
    #[error("{0}")]
    Bind(#[from] microframework_http::server::BindError),
    /// The gRPC listener could not be bound.
    #[cfg(feature = "grpc")]
    #[error("{0}")]
    GrpcBind(#[from] microframework_grpc::BindError),
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
}

/// A MicroFramework service: name it, add components and routes, then [`Service::run`].
pub struct Service {
    name: String,
    version: String,
    components: ComponentSet,
    apis: Vec<ApiFn>,
    routers: Vec<RouterFn>,
    hooks: Vec<BuilderHook>,
    sources: Option<ConfigSources>,
    args: Option<Vec<OsString>>,
    #[cfg(feature = "grpc")]
    grpc: Option<GrpcFn>,
    #[cfg(feature = "ws")]
    ws_section: bool,
    #[cfg(feature = "graphql")]
    graphql_section: bool,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
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
            apis: Vec::new(),
            routers: Vec::new(),
            hooks: Vec::new(),
            sources: None,
            args: None,
            #[cfg(feature = "grpc")]
            grpc: None,
            #[cfg(feature = "ws")]
            ws_section: false,
            #[cfg(feature = "graphql")]
            graphql_section: false,
        }
    }

    /// The version shown in the OpenAPI document and logs (pass `env!("CARGO_PKG_VERSION")`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Adds a component; components start in dependency order before the HTTP server.
    pub fn component(mut self, component: impl Component) -> Self {
        self.components.add(Box::new(component));
        self
    }

    /// Adds the SQL database component (section `database`), with embedded migrations.
    ///
    /// The pool is available to route builders as `ctx.require::<Database>()`.
    #[cfg(feature = "data")]
    pub fn database(self, migrations: microframework_data::Migrations) -> Self {
        self.component(microframework_data::DatabaseComponent::new().with_migrations(migrations))
    }

    /// Adds documented routes, built once components have started.
    pub fn api<F>(mut self, build: F) -> Self
    where
        F: FnOnce(&AppContext) -> Result<OpenApiRouter, BoxError> + Send + 'static,
    {
        self.apis.push(Box::new(build));
        self
    }

    /// Serves gRPC services (section `grpc`), built once components have started: on their own
    /// port (`grpc.port`, default 50051), or beside REST on the HTTP listener when `grpc.port`
    /// equals a non-zero `server.port` (`grpc.host` is then ignored). Health (`grpc.health.v1`),
    /// reflection, request ids, metrics and tracing are on; the JWT settings of `auth.jwt` and the
    /// buckets of `http.rate_limit` (shared with REST, `RESOURCE_EXHAUSTED` over the limit) apply;
    /// shutdown drains streams like HTTP requests.
    #[cfg(feature = "grpc")]
    pub fn grpc<F>(mut self, build: F) -> Self
    where
        F: FnOnce(&AppContext) -> Result<microframework_grpc::GrpcBuilder, BoxError> + Send + 'static,
    {
        self.grpc = Some(Box::new(build));
        self
    }

    /// Serves WebSocket connections at `websocket.path` (default `/ws`) with `handler`, sharing
    /// `hub` (rooms, broadcast) with the rest of the service. The hub is a component, so on
    /// shutdown every peer gets a close frame with code 1001 before the process exits. The
    /// upgrade checks tokens itself (header or `?access_token=`, with the service's one
    /// verifier): with `auth.jwt.required` an anonymous upgrade gets 401, unless
    /// `websocket.require_auth: false` or `auth.jwt.public_paths` makes the endpoint public.
    #[cfg(feature = "ws")]
    pub fn websocket<H: microframework_ws::WsHandler>(mut self, hub: microframework_ws::Hub, handler: H) -> Self {
        self.ws_section = true;
        self.components.add(Box::new(hub.component()));
        // The HTTP layer lets anonymous upgrades through so that browsers, which cannot set a
        // header on a WebSocket, reach the endpoint with `?access_token=`; the endpoint decides.
        self.hooks.push(Box::new(|b: AppBuilder, ctx: &AppContext| {
            let path = ctx.config().current().get::<String>("websocket.path").unwrap_or_else(|| "/ws".to_owned());
            b.public_path(path)
        }));
        self.router(move |ctx| microframework_ws::router(hub, handler, ctx, None))
    }

    /// Serves a GraphQL schema (section `graphql`): queries and mutations at `graphql.path`
    /// (default `/graphql`, with an offline GraphiQL page), subscriptions over WebSocket at
    /// `graphql.ws_path` (default `/graphql/ws`). `build` returns the schema builder; the
    /// section's `max_depth`, `max_complexity` and `introspection` are applied to it, with
    /// per-operation metrics and tracing. Verified JWT claims reach resolvers
    /// (`microframework::graphql::claims(ctx)`). Exempt from `auth.jwt.required`: the
    /// subscription path, because it authenticates `connection_init` itself with the service's
    /// one verifier, and the requests that only load GraphiQL
    /// ([`GraphqlConfig::is_graphiql_request`](microframework_graphql::GraphqlConfig::is_graphiql_request)).
    ///
    /// To mount a schema whose limits your code sets itself, use [`Service::router`] with
    /// [`microframework_graphql::router_with_schema`].
    #[cfg(feature = "graphql")]
    pub fn graphql<F, Q, M, S>(mut self, build: F) -> Self
    where
        F: FnOnce(&AppContext) -> Result<async_graphql::SchemaBuilder<Q, M, S>, BoxError> + Send + 'static,
        Q: async_graphql::ObjectType + 'static,
        M: async_graphql::ObjectType + 'static,
        S: async_graphql::SubscriptionType + 'static,
    {
        self.graphql_section = true;
        self.hooks.push(Box::new(|b: AppBuilder, ctx: &AppContext| {
            // An invalid section leaves the builder as it is: the router below reports it.
            match microframework_graphql::GraphqlConfig::from_context(ctx) {
                Ok(cfg) => b
                    .public_path(cfg.ws_path.clone())
                    .public_request(move |method, uri, headers| cfg.is_graphiql_request(method, uri, headers)),
                Err(_) => b,
            }
        }));
        self.router(move |ctx| microframework_graphql::router(build(ctx)?, ctx))
    }

    /// Adds a plain axum router (not in the OpenAPI document), built once components have started.
    pub fn router<F>(mut self, build: F) -> Self
    where
        F: FnOnce(&AppContext) -> Result<Router, BoxError> + Send + 'static,
    {
        self.routers.push(Box::new(build));
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
        self.hooks.push(Box::new(move |b: AppBuilder, _: &AppContext| b.layer(layer)));
        self
    }

    /// Exempts `path` (exact, or a prefix ending in `*`) from `auth.jwt.required`.
    pub fn public_path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.hooks.push(Box::new(move |b: AppBuilder, _: &AppContext| b.public_path(path)));
        self
    }

    /// Exempts the requests `rule` accepts (method, URI, headers) from `auth.jwt.required`, for
    /// what a path alone cannot tell apart. A request that carries a token is verified whatever
    /// the rule says.
    pub fn public_request<F>(mut self, rule: F) -> Self
    where
        F: Fn(&axum::http::Method, &axum::http::Uri, &axum::http::HeaderMap) -> bool + Send + Sync + 'static,
    {
        self.hooks.push(Box::new(move |b: AppBuilder, _: &AppContext| b.public_request(rule)));
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
                .and_then(|h| validate_sections(&h, self.sections()))
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

    fn has_database(&self) -> bool {
        self.components.names().iter().any(|n| n == "database")
    }

    fn sections(&self) -> Sections {
        Sections {
            database: self.has_database(),
            grpc: self.has_grpc(),
            #[cfg(feature = "ws")]
            websocket: self.ws_section,
            #[cfg(not(feature = "ws"))]
            websocket: false,
            #[cfg(feature = "graphql")]
            graphql: self.graphql_section,
            #[cfg(not(feature = "graphql"))]
            graphql: false,
        }
    }

    fn has_grpc(&self) -> bool {
        #[cfg(feature = "grpc")]
        return self.grpc.is_some();
        #[cfg(not(feature = "grpc"))]
        false
    }

    async fn start_with(mut self, flags: Flags) -> Result<RunningService, StartupError> {
        let started = Instant::now();
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let sources = flags.apply(self.sources.take().unwrap_or_default());
        let config = ConfigHandle::load(sources)?;
        validate_sections(&config, self.sections())?;
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
        #[cfg(feature = "grpc")]
        let grpc_listener = match &self.grpc {
            Some(_) => {
                let cfg: microframework_grpc::GrpcConfig = config.section("grpc")?;
                // One port for both when they name the same, fixed port; `server.host` then applies.
                let same_port = cfg.port == server.port && server.port != 0;
                if cfg.enabled && !same_port {
                    let l = cfg.bind().await?;
                    Some(l)
                } else {
                    None
                }
            }
            None => None,
        };

        if let Err(e) = self.components.start_all(&ctx).await {
            // A component that rejected its configuration section is a configuration error.
            if let StartError::Component { source, .. } = &e
                && let Some(config) = source.downcast_ref::<ConfigError>()
            {
                return Err(StartupError::Config(config.clone()));
            }
            return Err(e.into());
        }
        let mut builder = AppBuilder::new(self.name.clone(), self.version.clone());
        let build = async {
            // The one JWT verifier every protocol shares (one JWKS fetch and cache).
            microframework_auth::SharedJwt::init(&ctx).await?;
            for api in self.apis.drain(..) {
                builder = builder.api(api(&ctx)?);
            }
            for router in self.routers.drain(..) {
                builder = builder.router(router(&ctx)?);
            }
            for hook in self.hooks.drain(..) {
                builder = hook(builder, &ctx);
            }
            builder.build(&ctx, metrics.clone()).await
        };
        let app = match build.await {
            Ok(app) => app,
            Err(e) => {
                self.components.stop_all(&ctx, shutdown.component_timeout).await;
                return Err(match e.downcast::<ConfigError>() {
                    Ok(config) => StartupError::Config(*config),
                    Err(e) => StartupError::Http(e),
                });
            }
        };
        #[allow(unused_mut)]
        let mut http_router = app.router;
        #[cfg(feature = "grpc")]
        let mut grpc_server: Option<(tokio::net::TcpListener, axum::Router)> = None;
        // The `server` section's limits apply to every listener; HTTP/2 keep-alive pings for gRPC
        // connections are added to whichever listener serves them.
        #[allow(unused_mut)]
        let mut http_options = microframework_http::server::ServeOptions::from_config(&server);
        #[cfg(feature = "grpc")]
        let mut grpc_options = microframework_http::server::ServeOptions::from_config(&server);
        #[cfg(feature = "grpc")]
        if let Some(build_grpc) = self.grpc.take() {
            let built = async {
                let mut builder = build_grpc(&ctx)?;
                if let Some((verifier, jwt)) = app.jwt.clone() {
                    builder = builder.jwt(verifier, jwt);
                }
                // One client's REST requests and gRPC calls share its buckets (`http.rate_limit`):
                // per client address before authentication, per subject after.
                let (client, subject) = (app.rate_limiter.clone(), app.rate_limiter.clone());
                builder = builder
                    .rate_limit_per_client(move |req| client.check_client(req))
                    .rate_limit_per_subject(move |req| subject.check_subject(req));
                builder.build(&ctx).await
            };
            match built.await {
                Ok(grpc) if grpc.config.enabled => match grpc_listener {
                    Some(l) => {
                        grpc_options = grpc_options.http2_keepalive_interval(grpc.config.http2_keepalive_interval);
                        grpc_server = Some((l, grpc.standalone_router()));
                    }
                    None => match grpc.merge_rest(http_router.clone()) {
                        Ok(merged) => {
                            http_options = http_options.http2_keepalive_interval(grpc.config.http2_keepalive_interval);
                            http_router = merged;
                        }
                        Err(e) => {
                            self.components.stop_all(&ctx, shutdown.component_timeout).await;
                            return Err(StartupError::Http(e));
                        }
                    },
                },
                Ok(_) => {}
                Err(e) => {
                    self.components.stop_all(&ctx, shutdown.component_timeout).await;
                    return Err(match e.downcast::<ConfigError>() {
                        Ok(config) => StartupError::Config(*config),
                        Err(e) => StartupError::Http(e),
                    });
                }
            }
        }
        #[cfg(feature = "grpc")]
        let grpc_addr = grpc_server.as_ref().and_then(|(l, _)| l.local_addr().ok());
        #[cfg(not(feature = "grpc"))]
        let grpc_addr: Option<SocketAddr> = None;

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
        #[cfg(feature = "grpc")]
        let grpc_task = grpc_server.map(|(listener, router)| {
            let stop = stop_accepting.clone().cancelled_owned();
            tokio::spawn(microframework_http::server::serve_with(
                listener,
                router,
                stop,
                shutdown.timeout,
                grpc_options,
            ))
        });
        let admin_task = admin_listener.zip(app.admin).map(|(listener, router)| {
            let stop = stop_accepting.clone().cancelled_owned();
            let options = microframework_http::server::ServeOptions::from_config(&ServerConfig {
                max_connections: ADMIN_MAX_CONNECTIONS,
                ..server.clone()
            });
            tokio::spawn(microframework_http::server::serve_with(listener, router, stop, shutdown.timeout, options))
        });
        let task_ctx = ctx.clone();
        let mut components = std::mem::take(&mut self.components);
        let stop = stop_accepting.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            let outcome =
                microframework_http::server::serve_with(listener, http_router, stop, shutdown.timeout, http_options)
                    .await;
            #[cfg(feature = "grpc")]
            if let Some(t) = grpc_task {
                match t.await {
                    Ok(Ok(o)) => tracing::info!(outcome = ?o, "gRPC server stopped"),
                    Ok(Err(e)) => tracing::error!("gRPC server error: {e}"),
                    Err(e) => tracing::error!("gRPC server task failed: {e}"),
                }
            }
            if let Some(t) = admin_task {
                match t.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!("admin server error: {e}"),
                    Err(e) => tracing::error!("admin server task failed: {e}"),
                }
            }
            task_ctx.lifecycle().set_state(ServiceState::Draining);
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
            grpc = ?grpc_addr,
            startup_ms = started.elapsed().as_millis() as u64,
            "service ready"
        );
        Ok(RunningService { addr, admin_addr, grpc_addr, ctx, task })
    }
}

/// Reads every framework section so that all problems are reported together, and registers
/// them for validation on reload.
/// Which optional sections a service uses.
struct Sections {
    database: bool,
    grpc: bool,
    websocket: bool,
    graphql: bool,
}

fn validate_sections(config: &ConfigHandle, sections: Sections) -> Result<(), StartupError> {
    let Sections { database, grpc, websocket, graphql } = sections;
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
    #[cfg(feature = "data")]
    if database {
        note(config.section::<microframework_data::DatabaseConfig>("database").map(drop));
    }
    #[cfg(not(feature = "data"))]
    let _ = database;
    #[cfg(feature = "grpc")]
    if grpc {
        note(config.section::<microframework_grpc::GrpcConfig>("grpc").map(drop));
    }
    #[cfg(not(feature = "grpc"))]
    let _ = grpc;
    #[cfg(feature = "ws")]
    if websocket {
        note(config.section::<microframework_ws::WsConfig>("websocket").map(drop));
    }
    #[cfg(not(feature = "ws"))]
    let _ = websocket;
    #[cfg(feature = "graphql")]
    if graphql {
        note(config.section::<microframework_graphql::GraphqlConfig>("graphql").map(drop));
    }
    #[cfg(not(feature = "graphql"))]
    let _ = graphql;
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
    grpc_addr: Option<SocketAddr>,
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

    /// The address of the separate gRPC listener, when gRPC has its own port.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_addr
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

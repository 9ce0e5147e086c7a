//! The HTTP side of the plugin seam: what plugins (and the service's own calls) add to the HTTP
//! application and its listeners.
//!
//! A plugin reaches it through its [`PluginContext`] with [`HttpParts::of`]:
//!
//! ```
//! use microframework_core::{BoxError, NoConfig, Plugin, PluginContext};
//! use microframework_http::{HttpParts, axum};
//!
//! struct Ping;
//!
//! impl Plugin for Ping {
//!     type Config = NoConfig;
//!     fn name(&self) -> &str { "ping" }
//!     fn section(&self) -> Option<&str> { None }
//!     fn build(self, _: NoConfig, cx: &mut PluginContext<'_>) -> Result<(), BoxError> {
//!         HttpParts::of(cx)
//!             .router(|_ctx| Ok(axum::Router::new().route("/ping", axum::routing::get(|| async { "pong" }))))
//!             .public_path("/ping");
//!         Ok(())
//!     }
//! }
//! ```
//!
//! Route builders run once every component has started, so they can `require` what components
//! provide (a database pool, a cache). [`Http::on_serve`] runs after the application is
//! assembled, with the public router, the service's one rate limiter and JWT verifier: it can
//! merge another protocol into the public listener or open a listener of its own (gRPC does
//! either, depending on `grpc.port`). Every listener stops accepting with the others and drains
//! within `shutdown.timeout`.

use std::future::Future;
use std::pin::Pin;

use axum::Router;
use tokio::net::TcpListener;
use utoipa_axum::router::OpenApiRouter;

use microframework_auth::{JwtConfig, JwtVerifier};
use microframework_core::{AppContext, BoxError, PluginContext};
use microframework_telemetry::Metrics;

use crate::app::{AppBuilder, BuiltApp};
use crate::middleware::RateLimiter;
use crate::server::ServeOptions;

type ApiFn = Box<dyn FnOnce(&AppContext) -> Result<OpenApiRouter, BoxError> + Send>;
type RouterFn = Box<dyn FnOnce(&AppContext) -> Result<Router, BoxError> + Send>;
type ConfigureFn = Box<dyn FnOnce(AppBuilder, &AppContext) -> Result<AppBuilder, BoxError> + Send>;
type ServeFn = Box<dyn FnOnce(Serving) -> Pin<Box<dyn Future<Output = Result<Serving, BoxError>> + Send>> + Send>;

enum Part {
    Api(ApiFn),
    Router(RouterFn),
    Configure(ConfigureFn),
}

/// The HTTP parts of a service, filled by plugins and the service's own calls, in order.
#[derive(Default)]
pub struct HttpParts {
    parts: Vec<(Option<String>, Part)>,
    serve: Vec<(Option<String>, ServeFn)>,
}

impl std::fmt::Debug for HttpParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpParts").field("parts", &self.parts.len()).field("serve", &self.serve.len()).finish()
    }
}

/// A part failed to build; `owner` names the plugin that added it (`None`: the service's own).
#[derive(Debug)]
pub struct PartError {
    /// The plugin that added the failing part, if a plugin did.
    pub owner: Option<String>,
    /// What the part returned.
    pub source: BoxError,
}

impl std::fmt::Display for PartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.owner {
            Some(plugin) => write!(f, "plugin `{plugin}`: {}", self.source),
            None => write!(f, "{}", self.source),
        }
    }
}

impl std::error::Error for PartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

impl HttpParts {
    /// The HTTP parts of the service being built, for the plugin `cx` builds: what it adds is
    /// marked as its own, so that a failure names it.
    pub fn of<'a>(cx: &'a mut PluginContext<'_>) -> Http<'a> {
        let owner = Some(cx.plugin().to_owned());
        Http { parts: cx.slot::<HttpParts>(), owner }
    }

    /// Adds parts that belong to no plugin (the service's own routes and layers).
    pub fn own(&mut self) -> Http<'_> {
        Http { parts: self, owner: None }
    }

    /// Appends `other`'s parts after these.
    pub fn extend(&mut self, other: HttpParts) {
        self.parts.extend(other.parts);
        self.serve.extend(other.serve);
    }

    /// Builds every route part (once components have started), assembles the application with
    /// the default stack, then runs the serve hooks in order.
    pub async fn assemble(
        self,
        mut builder: AppBuilder,
        ctx: &AppContext,
        metrics: Option<Metrics>,
    ) -> Result<Served, PartError> {
        for (owner, part) in self.parts {
            let built = match part {
                Part::Api(f) => f(ctx).map(|api| builder.api(api)),
                Part::Router(f) => f(ctx).map(|router| builder.router(router)),
                Part::Configure(f) => f(builder, ctx),
            };
            builder = built.map_err(|source| PartError { owner, source })?;
        }
        let BuiltApp { router, openapi, rate_limiter, jwt, admin } =
            builder.build(ctx, metrics).await.map_err(|source| PartError { owner: None, source })?;
        let server = ctx
            .config()
            .section::<crate::ServerConfig>("server")
            .map_err(|e| PartError { owner: None, source: Box::new(e) })?;
        let mut serving = Serving {
            ctx: ctx.clone(),
            router,
            options: ServeOptions::from_config(&server),
            rate_limiter,
            jwt,
            listeners: Vec::new(),
        };
        for (owner, hook) in self.serve {
            serving = hook(serving).await.map_err(|source| PartError { owner, source })?;
        }
        Ok(Served { serving, openapi, admin })
    }
}

/// What [`HttpParts::assemble`] produced.
#[non_exhaustive]
pub struct Served {
    /// The public listener's router and options, and the extra listeners.
    pub serving: Serving,
    /// The OpenAPI document.
    pub openapi: utoipa::openapi::OpenApi,
    /// The admin listener's router, when `server.admin_port` is set.
    pub admin: Option<Router>,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served").field("serving", &self.serving).finish_non_exhaustive()
    }
}

/// Adds HTTP parts for one owner; see [`HttpParts::of`].
pub struct Http<'a> {
    parts: &'a mut HttpParts,
    owner: Option<String>,
}

impl std::fmt::Debug for Http<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").field("owner", &self.owner).finish_non_exhaustive()
    }
}

impl Http<'_> {
    fn push(&mut self, part: Part) -> &mut Self {
        self.parts.parts.push((self.owner.clone(), part));
        self
    }

    /// Adds documented routes (in the OpenAPI document), built once components have started.
    pub fn api<F>(&mut self, build: F) -> &mut Self
    where
        F: FnOnce(&AppContext) -> Result<OpenApiRouter, BoxError> + Send + 'static,
    {
        self.push(Part::Api(Box::new(build)))
    }

    /// Adds a plain axum router (not in the OpenAPI document), built once components have started.
    pub fn router<F>(&mut self, build: F) -> &mut Self
    where
        F: FnOnce(&AppContext) -> Result<Router, BoxError> + Send + 'static,
    {
        self.push(Part::Router(Box::new(build)))
    }

    /// Changes the application builder: layers, public paths, anything [`AppBuilder`] offers,
    /// with the context at hand.
    pub fn configure<F>(&mut self, configure: F) -> &mut Self
    where
        F: FnOnce(AppBuilder, &AppContext) -> Result<AppBuilder, BoxError> + Send + 'static,
    {
        self.push(Part::Configure(Box::new(configure)))
    }

    /// Wraps the service's routes in any tower layer (inside the default middleware stack).
    pub fn layer<L>(&mut self, layer: L) -> &mut Self
    where
        L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: tower::Service<axum::extract::Request> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Response: axum::response::IntoResponse + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Error: Into<std::convert::Infallible> + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
    {
        self.configure(move |b, _| Ok(b.layer(layer)))
    }

    /// Exempts `path` (exact, or a prefix ending in `*`) from `auth.jwt.required`.
    pub fn public_path(&mut self, path: impl Into<String>) -> &mut Self {
        let path = path.into();
        self.configure(move |b, _| Ok(b.public_path(path)))
    }

    /// Exempts the requests `rule` accepts (method, URI, headers) from `auth.jwt.required`; a
    /// request that carries a token is verified whatever the rule says.
    pub fn public_request<F>(&mut self, rule: F) -> &mut Self
    where
        F: Fn(&http::Method, &http::Uri, &http::HeaderMap) -> bool + Send + Sync + 'static,
    {
        self.configure(move |b, _| Ok(b.public_request(rule)))
    }

    /// Runs `hook` once the application is assembled: it may replace the public router (to
    /// serve another protocol beside HTTP), change the listener options, or open a listener of
    /// its own with [`Serving::listen`].
    pub fn on_serve<F, Fut>(&mut self, hook: F) -> &mut Self
    where
        F: FnOnce(Serving) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Serving, BoxError>> + Send + 'static,
    {
        self.parts.serve.push((self.owner.clone(), Box::new(move |s| Box::pin(hook(s)))));
        self
    }
}

/// The assembled HTTP application, as the serve hooks see and change it.
#[non_exhaustive]
pub struct Serving {
    /// The service context.
    pub ctx: AppContext,
    /// The public listener's router, with the default middleware stack.
    pub router: Router,
    /// The public listener's connection settings (`server`).
    pub options: ServeOptions,
    /// The service's one rate limiter (`http.rate_limit`): other protocols take from the same
    /// buckets.
    pub rate_limiter: RateLimiter,
    /// The service's one JWT verifier and its settings, when `auth.jwt` is on.
    pub jwt: Option<(JwtVerifier, JwtConfig)>,
    /// Listeners opened by plugins.
    pub listeners: Vec<Listener>,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving").field("options", &self.options).field("listeners", &self.listeners).finish()
    }
}

impl Serving {
    /// Serves `router` on `listener` beside the public listener: it starts once the service is
    /// ready and stops accepting, drains and closes with the others. `name` is how
    /// `RunningService::listener_addr` finds its address.
    pub fn listen(&mut self, name: impl Into<String>, listener: TcpListener, router: Router, options: ServeOptions) {
        self.listeners.push(Listener { name: name.into(), listener, router, options });
    }
}

/// A listener opened by a plugin.
#[derive(Debug)]
#[non_exhaustive]
pub struct Listener {
    /// Its name (`grpc`, say).
    pub name: String,
    /// The bound socket.
    pub listener: TcpListener,
    /// What it serves.
    pub router: Router,
    /// Its connection settings.
    pub options: ServeOptions,
}

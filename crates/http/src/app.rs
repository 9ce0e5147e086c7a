//! Assembling a service's HTTP application: user routes, framework endpoints, OpenAPI and the
//! default middleware stack.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use axum::Router;
use axum::routing::MethodRouter;
use tower::Layer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use microframework_auth::{JwtVerifier, SharedJwt};
use microframework_core::{AppContext, BoxError};
use microframework_telemetry::{Metrics, MetricsConfig};

use crate::config::{HttpConfig, ServerConfig};
use crate::middleware::{PublicRequest, RateLimiter, StackOptions, apply_default_stack};
use crate::routes::{health_routes, metrics_route};

type RouterHook = Box<dyn FnOnce(Router) -> Router + Send>;

/// Builds the HTTP application of a service.
///
/// Add documented routes with [`AppBuilder::api`] (utoipa's `OpenApiRouter`), plain axum routers
/// with [`AppBuilder::router`], and any tower layer with [`AppBuilder::layer`].
pub struct AppBuilder {
    title: String,
    version: String,
    api: OpenApiRouter,
    plain: Vec<Router>,
    hooks: Vec<RouterHook>,
    public_paths: Vec<String>,
    public_requests: Vec<PublicRequest>,
}

impl std::fmt::Debug for AppBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppBuilder").field("title", &self.title).field("version", &self.version).finish_non_exhaustive()
    }
}

/// The assembled application.
pub struct BuiltApp {
    /// The router with every route and the default middleware.
    pub router: Router,
    /// The OpenAPI document served at `http.openapi.path`.
    pub openapi: utoipa::openapi::OpenApi,
    /// The live rate limiter (follows reloads of `http.rate_limit`).
    pub rate_limiter: RateLimiter,
    /// The JWT verifier and its settings, when `auth.jwt` is on (shared with other protocols).
    pub jwt: Option<(JwtVerifier, microframework_auth::JwtConfig)>,
    /// The admin listener's router (`/metrics`, health with details), when `server.admin_port`
    /// is set; the public router then serves neither `/metrics` nor readiness error texts.
    pub admin: Option<Router>,
}

impl std::fmt::Debug for BuiltApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltApp").finish_non_exhaustive()
    }
}

impl AppBuilder {
    /// A builder for the API titled `title` at `version`.
    pub fn new(title: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            version: version.into(),
            api: OpenApiRouter::new(),
            plain: Vec::new(),
            hooks: Vec::new(),
            public_paths: Vec::new(),
            public_requests: Vec::new(),
        }
    }

    /// Adds documented routes.
    pub fn api(mut self, router: OpenApiRouter) -> Self {
        self.api = self.api.merge(router);
        self
    }

    /// Adds a plain axum router (its routes are not in the OpenAPI document).
    pub fn router(mut self, router: Router) -> Self {
        self.plain.push(router);
        self
    }

    /// Adds a single plain route.
    pub fn route(self, path: &str, method_router: MethodRouter) -> Self {
        self.router(Router::new().route(path, method_router))
    }

    /// Wraps the service's routes (not the framework endpoints) in `layer`, inside the default stack.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: tower::Service<axum::extract::Request> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Response: axum::response::IntoResponse + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Error: Into<std::convert::Infallible> + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
    {
        self.hooks.push(Box::new(move |r: Router| r.layer(layer)));
        self
    }

    /// Exempts `path` (exact, or a prefix ending in `*`) from `auth.jwt.required`.
    pub fn public_path(mut self, path: impl Into<String>) -> Self {
        self.public_paths.push(path.into());
        self
    }

    /// Exempts the requests `rule` accepts (method, URI, headers) from `auth.jwt.required`, for
    /// what a path alone cannot tell apart: the GraphiQL page a browser loads from the GraphQL
    /// endpoint's own path, say. Requests that carry a token are verified whatever the rule says.
    pub fn public_request<F>(mut self, rule: F) -> Self
    where
        F: Fn(&http::Method, &http::Uri, &http::HeaderMap) -> bool + Send + Sync + 'static,
    {
        self.public_requests.push(std::sync::Arc::new(rule));
        self
    }

    /// Reads the `http`, `auth` and `metrics` sections from `ctx` and assembles the application.
    pub async fn build(self, ctx: &AppContext, metrics: Option<Metrics>) -> Result<BuiltApp, BoxError> {
        let http: HttpConfig = ctx.config().section("http")?;
        let server: ServerConfig = ctx.config().section("server")?;
        let metrics_cfg: MetricsConfig = ctx.config().section("metrics")?;
        let has_admin = server.admin_port.is_some();
        // Error texts of failing checks (addresses, driver messages) only where operators look.
        let public_details = !ctx.config().current().is_prod();

        let mut framework_paths = vec!["/health".to_owned(), "/health/*".to_owned()];
        if metrics_cfg.enabled && !has_admin {
            framework_paths.push(metrics_cfg.path.clone());
        }
        if http.openapi.enabled {
            framework_paths.push(http.openapi.path.clone());
            let docs = http.openapi.docs_path.trim_end_matches('/');
            framework_paths.push(docs.to_owned());
            framework_paths.push(format!("{docs}/*"));
        }

        // The service's one verifier (one JWKS cache), shared with the other protocols.
        let jwt = SharedJwt::init(ctx).await?.map(|SharedJwt { verifier, mut config }| {
            config.public_paths.extend(self.public_paths.iter().cloned());
            (verifier, config)
        });

        let (user_router, mut openapi) = self.api.split_for_parts();
        openapi.info = utoipa::openapi::Info::new(self.title.clone(), self.version.clone());
        if jwt.is_some() {
            let components = openapi.components.get_or_insert_with(Default::default);
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
            );
        }

        crate::openapi::document_stack_responses(
            &mut openapi,
            crate::openapi::StackResponses { body_limit: http.body_limit.enabled, rate_limit: http.rate_limit.enabled },
        );

        let mut app = user_router;
        for plain in self.plain {
            app = merge(app, plain)?;
        }
        for hook in self.hooks {
            app = hook(app);
        }

        let (health_router, health_doc) = health_routes(ctx.clone(), public_details).split_for_parts();
        let mut framework = health_router;
        let mut admin = has_admin.then(|| health_routes(ctx.clone(), true).split_for_parts().0);
        if let Some(m) = metrics.filter(|_| metrics_cfg.enabled) {
            let route = metrics_route(&metrics_cfg.path, m.clone());
            match admin.take() {
                Some(a) => admin = Some(merge(a, route)?),
                None => framework = merge(framework, route)?,
            }
            spawn_upkeep(ctx, m);
        }
        let admin = admin.map(|a| a.fallback(admin_not_found));
        if http.openapi.enabled {
            let mut doc = openapi.clone();
            doc.merge(health_doc);
            framework = merge(
                framework,
                SwaggerUi::new(http.openapi.docs_path.clone()).url(http.openapi.path.clone(), doc).into(),
            )?;
        }
        let app = merge(app, framework)?;

        let rate_limiter = RateLimiter::new(
            &http.rate_limit,
            framework_paths.clone(),
            crate::client_ip::ClientIpResolver::new(&http.client_ip),
        );
        follow_reloads(ctx, rate_limiter.clone(), http.rate_limit.clone());
        let opts = StackOptions {
            http,
            jwt: jwt.clone(),
            rate_limiter: rate_limiter.clone(),
            framework_paths,
            public_requests: self.public_requests,
        };
        let router = apply_default_stack(app, &opts);
        Ok(BuiltApp { router, openapi, rate_limiter, jwt, admin })
    }
}

/// The admin listener's answer to anything but its endpoints.
async fn admin_not_found(uri: http::Uri) -> axum::response::Response {
    let detail = format!("No admin endpoint at `{}`.", uri.path());
    crate::problem_response(microframework_core::ProblemDetails::new(microframework_core::ErrorKind::NotFound, detail))
}

/// Merges two routers, turning axum's panic on overlapping routes into an error.
fn merge(a: Router, b: Router) -> Result<Router, BoxError> {
    std::panic::catch_unwind(AssertUnwindSafe(|| a.merge(b))).map_err(|e| {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "overlapping routes".to_owned());
        format!("conflicting routes: {msg} (a service route may clash with /health, /metrics, /openapi.json or /docs)")
            .into()
    })
}

fn spawn_upkeep(ctx: &AppContext, metrics: Metrics) {
    let token = ctx.lifecycle().shutdown_token();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tick.tick() => metrics.run_upkeep(),
            }
        }
    });
}

fn follow_reloads(ctx: &AppContext, limiter: RateLimiter, mut current: crate::config::RateLimitConfig) {
    let mut rx = ctx.config().subscribe();
    let token = ctx.lifecycle().shutdown_token();
    tokio::spawn(async move {
        let mut cleanup = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = cleanup.tick() => limiter.cleanup(),
                changed = rx.changed() => {
                    if changed.is_err() { break }
                    let cfg = rx.borrow_and_update().clone();
                    // Buckets restart full on a change, so leave them alone when nothing changed.
                    if let Ok(http) = cfg.section::<HttpConfig>("http")
                        && http.rate_limit != current
                    {
                        limiter.update(&http.rate_limit);
                        tracing::info!(enabled = http.rate_limit.enabled, "rate limits updated");
                        current = http.rate_limit;
                    }
                }
            }
        }
    });
}

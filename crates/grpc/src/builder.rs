//! Assembling the gRPC application: services, health, reflection and the interceptor stack, as
//! one `axum::Router`.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use http::Request;
use tonic::Status;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

use microframework_auth::gate::GateLayer;
use microframework_auth::{JwtConfig, JwtVerifier};
use microframework_core::{AppContext, BoxError};

use crate::auth::{JwtAuthLayer, StatusReject};
use crate::config::GrpcConfig;
use crate::layers::{
    ConcurrencyLimitLayer, DeadlineLayer, DecodeLimitLayer, EncodeLimitLayer, ObserveLayer, RateLimitLayer,
};
use crate::methods::{self, MethodTable};
use crate::request_id::RequestIdLayer;

/// The name of the standard health service.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
/// The name of the v1 server reflection service.
pub const REFLECTION_V1_SERVICE: &str = "grpc.reflection.v1.ServerReflection";
/// The name of the v1alpha server reflection service.
pub const REFLECTION_V1ALPHA_SERVICE: &str = "grpc.reflection.v1alpha.ServerReflection";

/// How often the health service follows readiness.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

type AddFn = Box<dyn FnOnce(Router, &GrpcConfig) -> Result<Router, BoxError> + Send>;
type RouterHook = Box<dyn FnOnce(Router) -> Router + Send>;

struct Registered {
    name: &'static str,
    add: AddFn,
    /// Built from the `grpc` section (`add_service_with`), so its own limits can follow it.
    configured: bool,
}

/// The request message limit of a tonic server built without `max_decoding_message_size`.
const TONIC_DEFAULT_DECODING_LIMIT: u64 = 4 * 1024 * 1024;

/// Builds the gRPC application of a service from tonic servers.
///
/// ```no_run
/// # async fn demo(ctx: microframework_core::AppContext) -> Result<(), microframework_core::BoxError> {
/// use microframework_grpc::GrpcBuilder;
/// # let my_server = tonic_health::server::health_reporter().1;
/// # const MY_DESCRIPTOR: &[u8] = &[];
/// let app = GrpcBuilder::new()
///     // A generated server, such as `EchoServer::new(EchoImpl)`.
///     .add_service(my_server)
///     // The encoded descriptor set of its protos, for reflection and per-method metrics.
///     .file_descriptor_set(MY_DESCRIPTOR)
///     .build(&ctx)
///     .await?;
/// let listener = app.config.bind().await?;
/// // Serve `app.standalone_router()` on `listener`, or merge `app.router` into the REST router.
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct GrpcBuilder {
    services: Vec<Registered>,
    descriptors: Vec<&'static [u8]>,
    jwt: Option<JwtAuthLayer>,
    rate_limit_client: Option<crate::layers::RateCheck>,
    rate_limit_subject: Option<crate::layers::RateCheck>,
    hooks: Vec<RouterHook>,
}

impl std::fmt::Debug for GrpcBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.services.iter().map(|s| s.name).collect();
        f.debug_struct("GrpcBuilder")
            .field("services", &names)
            .field("descriptors", &self.descriptors.len())
            .field("jwt", &self.jwt.is_some())
            .field("rate_limit", &(self.rate_limit_client.is_some() || self.rate_limit_subject.is_some()))
            .finish_non_exhaustive()
    }
}

/// Routes `svc` at `/{NAME}/*`, as tonic's `Routes::add_service` does.
fn route<S>(router: Router, svc: S) -> Result<Router, BoxError>
where
    S: Service<Request<tonic::body::Body>, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    let path = format!("/{}/{{*rest}}", S::NAME);
    let svc = svc.map_request(|req: Request<axum::body::Body>| req.map(tonic::body::Body::new));
    std::panic::catch_unwind(AssertUnwindSafe(|| router.route_service(&path, svc)))
        .map_err(|_| format!("the gRPC service name `{}` cannot be routed", S::NAME).into())
}

impl GrpcBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tonic server, such as a generated `EchoServer::new(impl)` (with the same bounds as
    /// tonic's `RoutesBuilder::add_service`). Its calls are routed by its `NamedService::NAME`.
    ///
    /// The interceptor stack applies the configured message size limits to it, up to tonic's own
    /// 4 MiB request limit; a larger `grpc.max_decoding_message_size` needs
    /// [`add_service_with`](Self::add_service_with) (`build` says so otherwise).
    pub fn add_service<S>(mut self, svc: S) -> Self
    where
        S: Service<Request<tonic::body::Body>, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        self.services.push(Registered {
            name: S::NAME,
            add: Box::new(move |router, _| route(router, svc)),
            configured: false,
        });
        self
    }

    /// Adds the tonic server that `make` builds from the `grpc` configuration, typically to apply
    /// its message size limits with [`with_limits!`](crate::with_limits):
    ///
    /// ```ignore
    /// builder.add_service_with(move |cfg| with_limits!(cfg, EchoServer::new(echo)))
    /// ```
    pub fn add_service_with<S, F>(mut self, make: F) -> Self
    where
        F: FnOnce(&GrpcConfig) -> S + Send + 'static,
        S: Service<Request<tonic::body::Body>, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        self.services.push(Registered {
            name: S::NAME,
            add: Box::new(move |router, cfg| route(router, make(cfg))),
            configured: true,
        });
        self
    }

    /// Registers an encoded `FileDescriptorSet` (as written by `tonic-prost-build` or
    /// `protox`), for server reflection and for per-method metric labels. Repeatable.
    ///
    /// Calls of a service declared in no registered set are labelled `grpc_method="unknown"`.
    pub fn file_descriptor_set(mut self, bytes: &'static [u8]) -> Self {
        self.descriptors.push(bytes);
        self
    }

    /// Verifies bearer tokens with `verifier` (see [`crate::auth`]).
    pub fn jwt(mut self, verifier: JwtVerifier, config: JwtConfig) -> Self {
        self.jwt = Some(JwtAuthLayer::new(verifier, config));
        self
    }

    /// Refuses the calls `check` says are over a rate limit with `RESOURCE_EXHAUSTED` and a
    /// `google.rpc.RetryInfo` detail ([`RateLimitLayer`](crate::layers::RateLimitLayer)), before
    /// authentication: a flood of calls with forged tokens is refused without checking a single
    /// signature. `check` sees the call with the peer address (`ConnectInfo<SocketAddr>`); the
    /// health and reflection services are never limited. `Service::grpc` passes the HTTP layer's
    /// per-client buckets (`http.rate_limit.per_ip`), shared with REST.
    pub fn rate_limit_per_client<F>(mut self, check: F) -> Self
    where
        F: Fn(&Request<axum::body::Body>) -> Option<Duration> + Send + Sync + 'static,
    {
        self.rate_limit_client = Some(std::sync::Arc::new(check));
        self
    }

    /// Like [`rate_limit_per_client`](Self::rate_limit_per_client), after authentication, so
    /// verified claims are in the request's extensions. `Service::grpc` passes the HTTP layer's
    /// per-subject buckets (`http.rate_limit.per_subject`), shared with REST.
    pub fn rate_limit_per_subject<F>(mut self, check: F) -> Self
    where
        F: Fn(&Request<axum::body::Body>) -> Option<Duration> + Send + Sync + 'static,
    {
        self.rate_limit_subject = Some(std::sync::Arc::new(check));
        self
    }

    /// Wraps every gRPC service (health and reflection included) in any tower layer, inside the
    /// interceptor stack, so that it sees the request id, the span and the verified claims.
    /// Repeatable; the last one added is the outermost.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: Service<axum::extract::Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<axum::extract::Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<axum::extract::Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<axum::extract::Request>>::Future: Send + 'static,
    {
        self.hooks.push(Box::new(move |r: Router| r.layer(layer)));
        self
    }

    /// Reads the `grpc` section of `ctx` (registering it for validation on reload) and assembles
    /// the application: the added services, the `grpc.health.v1.Health` service following
    /// readiness (when `grpc.health`), server reflection v1 and v1alpha (when `grpc.reflection`)
    /// and the interceptor stack. Must be called within a Tokio runtime.
    ///
    /// When `grpc.enabled` is false, the routers are empty and nothing runs in the background.
    ///
    /// # Errors
    ///
    /// An invalid `grpc` section (a `ConfigError`), a service added twice (or clashing with the
    /// health or reflection service), or a file descriptor set that does not decode.
    pub async fn build(self, ctx: &AppContext) -> Result<GrpcApp, BoxError> {
        let config = GrpcConfig::from_context(ctx)?;
        if !config.enabled {
            return Ok(GrpcApp {
                router: Router::new(),
                standalone: Router::new(),
                health: None,
                services: Vec::new(),
                config,
            });
        }
        crate::metrics::describe();

        let mut names: Vec<&'static str> = self.services.iter().map(|s| s.name).collect();
        let user_services: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        if config.health {
            names.push(HEALTH_SERVICE);
        }
        if config.reflection {
            names.extend([REFLECTION_V1_SERVICE, REFLECTION_V1ALPHA_SERVICE]);
        }
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(format!("the gRPC service `{name}` is added twice").into());
            }
        }
        // The interceptor stack enforces any limit up to tonic's own; a larger one must reach the
        // server itself, or the configuration would promise what the server refuses.
        if config.max_decoding_message_size.bytes() > TONIC_DEFAULT_DECODING_LIMIT
            && let Some(plain) = self.services.iter().find(|s| !s.configured)
        {
            return Err(format!(
                "grpc.max_decoding_message_size is {}, above tonic's built-in 4MiB, but the service `{}` was added \
                 with add_service, which keeps the built-in limit: add it with \
                 add_service_with(|cfg| with_limits!(cfg, Server::new(...))) so that it follows the configuration",
                config.max_decoding_message_size, plain.name
            )
            .into());
        }

        let mut sets = self.descriptors.clone();
        sets.push(tonic_health::pb::FILE_DESCRIPTOR_SET);
        sets.push(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET);
        sets.push(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET);
        let declared = methods::declared(&sets)?;
        let table = MethodTable::new(&names, &declared);
        for name in &user_services {
            if !table.has_methods(name) {
                tracing::warn!(
                    service = %name,
                    "no registered file descriptor set declares this gRPC service: its calls are labelled \
                     grpc_method=\"unknown\" in metrics and reflection cannot describe it \
                     (add it with GrpcBuilder::file_descriptor_set)"
                );
            }
        }

        let mut routes = Router::new();
        for service in self.services {
            routes = (service.add)(routes, &config)?;
        }
        let health = if config.health {
            let (reporter, server) = tonic_health::server::health_reporter();
            routes = route(routes, crate::with_limits!(config, server))?;
            Some(reporter)
        } else {
            None
        };
        if config.reflection {
            let reflection = || {
                let mut b = tonic_reflection::server::Builder::configure();
                for set in &self.descriptors {
                    b = b.register_encoded_file_descriptor_set(set);
                }
                if config.health {
                    b = b.register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
                }
                for name in &names {
                    b = b.with_service_name(*name);
                }
                b
            };
            routes = route(routes, crate::with_limits!(config, reflection().build_v1()?))?;
            routes = route(routes, crate::with_limits!(config, reflection().build_v1alpha()?))?;
        }
        for hook in self.hooks {
            routes = hook(routes);
        }
        let standalone = routes.clone().fallback(unimplemented);

        let stack = ServiceBuilder::new()
            .layer(RequestIdLayer::new())
            .layer(ObserveLayer::new(std::sync::Arc::new(table)))
            .layer(self.rate_limit_client.map_or_else(RateLimitLayer::off, RateLimitLayer::new))
            // The service's JWT gate when configured, a pass-through otherwise (one stack type either way).
            .layer(GateLayer::new(self.jwt.map(|l| l.gate().clone()), StatusReject))
            .layer(self.rate_limit_subject.map_or_else(RateLimitLayer::off, RateLimitLayer::new))
            .layer(DeadlineLayer::new(config.timeout))
            .layer(ConcurrencyLimitLayer::new(config.concurrency_limit_per_connection))
            .layer(DecodeLimitLayer::new(config.max_decoding()))
            .layer(EncodeLimitLayer::new(config.max_encoding()));
        let router = routes.layer(stack.clone());
        let standalone = standalone.layer(stack);

        if let Some(reporter) = &health {
            let mut statuses = vec![String::new()];
            statuses.extend(user_services.iter().cloned());
            for name in &statuses {
                reporter.set_service_status(name, ServingStatus::NotServing).await;
            }
            spawn_health(ctx.clone(), reporter.clone(), statuses);
        }
        Ok(GrpcApp { router, standalone, health, services: user_services, config })
    }
}

/// The answer to a call of a service that is not registered.
async fn unimplemented() -> axum::response::Response {
    Status::unimplemented("unknown gRPC service").into_http()
}

/// Sets the health of the server (`""`) and of every service to follow readiness, checked every
/// second, and to `NOT_SERVING` as soon as shutdown is requested.
fn spawn_health(ctx: AppContext, reporter: HealthReporter, services: Vec<String>) {
    let token = ctx.lifecycle().shutdown_token();
    tokio::spawn(async move {
        let set = |status: ServingStatus| {
            let reporter = &reporter;
            let services = &services;
            async move {
                for name in services {
                    reporter.set_service_status(name, status).await;
                }
            }
        };
        let mut tick = tokio::time::interval(HEALTH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut serving: Option<bool> = None;
        loop {
            let up = tokio::select! {
                biased;
                _ = token.cancelled() => break,
                _ = tick.tick() => tokio::select! {
                    biased;
                    _ = token.cancelled() => break,
                    report = ctx.health().readiness(ctx.lifecycle()) => report.is_up(),
                },
            };
            if serving != Some(up) {
                if up {
                    tracing::info!("gRPC health: SERVING");
                    set(ServingStatus::Serving).await;
                } else {
                    // Not ready at start-up is expected; only a change from serving is worth a warning.
                    if serving.is_some() {
                        tracing::warn!("gRPC health: NOT_SERVING (readiness failed)");
                    }
                    set(ServingStatus::NotServing).await;
                }
                serving = Some(up);
            }
        }
        tracing::info!("gRPC health: NOT_SERVING (shutting down)");
        set(ServingStatus::NotServing).await;
    });
}

/// The assembled gRPC application.
#[derive(Debug)]
pub struct GrpcApp {
    /// The gRPC routes (`/package.Service/*`) wrapped in the interceptor stack, without a
    /// fallback, for merging with a REST router on the same port: see
    /// [`merge_rest`](Self::merge_rest).
    pub router: Router,
    standalone: Router,
    /// The health reporter (`None` when `grpc.health` is off). The builder's background task
    /// sets the server (`""`) and every added service to follow readiness; use it to report more.
    pub health: Option<HealthReporter>,
    /// The names of the added services.
    pub services: Vec<String>,
    /// The `grpc` section in effect.
    pub config: GrpcConfig,
}

impl GrpcApp {
    /// [`router`](Self::router) plus a fallback answering `UNIMPLEMENTED` (through the interceptor
    /// stack, so such calls are counted as `unknown`): for a listener of its own.
    pub fn standalone_router(&self) -> Router {
        self.standalone.clone()
    }

    /// One router serving both gRPC and the REST router `rest` (HTTP/1.1 and HTTP/2 on the same
    /// port), each with its own middleware: REST middleware never sees gRPC calls and the
    /// interceptor stack never sees REST requests. Paths that match neither reach the REST
    /// fallback (with its middleware); for calls of unknown gRPC services that is a `404`, which
    /// gRPC clients read as `UNIMPLEMENTED`.
    ///
    /// The order matters and is why this helper exists: with axum, `rest.merge(grpc)` would
    /// replace the REST router's default fallback, and its middleware, by the gRPC router's.
    ///
    /// # Errors
    ///
    /// When a REST route overlaps a gRPC service path.
    pub fn merge_rest(&self, rest: Router) -> Result<Router, BoxError> {
        let grpc = self.router.clone();
        std::panic::catch_unwind(AssertUnwindSafe(|| grpc.merge(rest))).map_err(|e| {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "overlapping routes".to_owned());
            format!("the REST routes clash with the gRPC routes: {msg}").into()
        })
    }
}

//! [`GrpcPlugin`]: gRPC services as a plugin of the service.

use std::sync::{Arc, Mutex};

use axum::Router;
use microframework_core::{AppContext, BoxError, Plugin, PluginContext};
use microframework_http::server::ServeOptions;
use microframework_http::{HttpParts, ServerConfig, Serving};

use crate::builder::GrpcBuilder;
use crate::config::GrpcConfig;

/// Serves gRPC services (section `grpc`), built once components have started: on their own port
/// (`grpc.port`, default 50051), or beside REST on the HTTP listener when `grpc.port` equals a
/// non-zero `server.port` (`grpc.host` is then ignored).
///
/// Health (`grpc.health.v1`), reflection, request ids, metrics and tracing are on; the service's
/// one JWT verifier (`auth.jwt`) and its one rate limiter (`http.rate_limit`, per client before
/// authentication, per subject after, shared with REST, `RESOURCE_EXHAUSTED` over the limit)
/// apply; shutdown drains streams like HTTP requests. `Service::grpc(build)` adds it; the
/// listener's address is `RunningService::listener_addr("grpc")`.
pub struct GrpcPlugin<F> {
    build: F,
}

impl<F> std::fmt::Debug for GrpcPlugin<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcPlugin").finish_non_exhaustive()
    }
}

impl<F> GrpcPlugin<F> {
    /// The plugin serving what `build` returns.
    pub fn new(build: F) -> Self {
        Self { build }
    }
}

impl<F> Plugin for GrpcPlugin<F>
where
    F: FnOnce(&AppContext) -> Result<GrpcBuilder, BoxError> + Send + 'static,
{
    type Config = GrpcConfig;

    fn name(&self) -> &str {
        "grpc"
    }

    fn section(&self) -> Option<&str> {
        Some("grpc")
    }

    fn build(self, _config: GrpcConfig, cx: &mut PluginContext<'_>) -> Result<(), BoxError> {
        let build = self.build;
        // Other plugins add their services to the same slot, before or after this one is built.
        let others = GrpcServices::of(cx);
        HttpParts::of(cx).on_serve(move |serving| serve(build, others, serving));
        Ok(())
    }
}

type AddFn = Box<dyn FnOnce(GrpcBuilder, &AppContext) -> Result<GrpcBuilder, BoxError> + Send>;

/// The gRPC slot of the plugin seam: services that plugins other than [`GrpcPlugin`] add to the
/// service's gRPC server (with its health, reflection, interceptors and listener).
///
/// A plugin that adds services names `grpc` in its `dependencies()`, so that a service without
/// gRPC refuses to start and says why:
///
/// ```ignore
/// fn dependencies(&self) -> Vec<String> { vec!["grpc".into()] }
///
/// fn build(self, _: NoConfig, cx: &mut PluginContext<'_>) -> Result<(), BoxError> {
///     GrpcServices::of(cx).add(|builder, ctx| Ok(builder.add_service(AuditServer::new(Audit::new(ctx)?))));
///     Ok(())
/// }
/// ```
#[derive(Clone, Default)]
pub struct GrpcServices {
    adds: Arc<Mutex<Vec<(String, AddFn)>>>,
}

impl std::fmt::Debug for GrpcServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.adds.lock().map(|a| a.len()).unwrap_or_default();
        f.debug_struct("GrpcServices").field("adds", &n).finish()
    }
}

/// What a plugin adds to the gRPC server; see [`GrpcServices::of`].
pub struct GrpcAdd {
    services: GrpcServices,
    owner: String,
}

impl std::fmt::Debug for GrpcAdd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcAdd").field("owner", &self.owner).finish_non_exhaustive()
    }
}

impl GrpcServices {
    /// The gRPC services of the service being built, for the plugin `cx` builds.
    pub fn of(cx: &mut PluginContext<'_>) -> GrpcAdd {
        let owner = cx.plugin().to_owned();
        GrpcAdd { services: cx.slot::<GrpcServices>().clone(), owner }
    }

    fn take(&self) -> Vec<(String, AddFn)> {
        std::mem::take(&mut *self.adds.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl GrpcAdd {
    /// Adds services (or layers) to the builder once components have started: `add` gets the
    /// builder and the context and returns the builder, say with
    /// [`add_service`](GrpcBuilder::add_service).
    pub fn add<F>(&self, add: F) -> &Self
    where
        F: FnOnce(GrpcBuilder, &AppContext) -> Result<GrpcBuilder, BoxError> + Send + 'static,
    {
        self.services.adds.lock().unwrap_or_else(|p| p.into_inner()).push((self.owner.clone(), Box::new(add)));
        self
    }
}

async fn serve<F>(build: F, others: GrpcAdd, mut s: Serving) -> Result<Serving, BoxError>
where
    F: FnOnce(&AppContext) -> Result<GrpcBuilder, BoxError>,
{
    let mut builder = build(&s.ctx)?;
    for (owner, add) in others.services.take() {
        builder = add(builder, &s.ctx).map_err(|e| format!("the gRPC services of plugin `{owner}`: {e}"))?;
    }
    if let Some((verifier, jwt)) = s.jwt.clone() {
        builder = builder.jwt(verifier, jwt);
    }
    // One client's REST requests and gRPC calls share its buckets (`http.rate_limit`): per client
    // address before authentication, per subject after.
    let (client, subject) = (s.rate_limiter.clone(), s.rate_limiter.clone());
    builder = builder
        .rate_limit_per_client(move |req| client.check_client(req))
        .rate_limit_per_subject(move |req| subject.check_subject(req));
    let grpc = builder.build(&s.ctx).await?;
    if !grpc.config.enabled {
        return Ok(s);
    }
    let server: ServerConfig = s.ctx.config().section("server")?;
    let keepalive = grpc.config.http2_keepalive_interval;
    // One port for both when they name the same, fixed port; `server.host` then applies.
    if grpc.config.port == server.port && server.port != 0 {
        let rest = std::mem::replace(&mut s.router, Router::new());
        s.router = grpc.merge_rest(rest)?;
        s.options = s.options.clone().http2_keepalive_interval(keepalive);
    } else {
        let listener = grpc.config.bind().await?;
        // The `server` section's limits apply to every listener.
        let options = ServeOptions::from_config(&server).http2_keepalive_interval(keepalive);
        s.listen("grpc", listener, grpc.standalone_router(), options);
    }
    Ok(s)
}

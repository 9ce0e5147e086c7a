//! [`GrpcPlugin`]: gRPC services as a plugin of the service.

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
        HttpParts::of(cx).on_serve(move |serving| serve(build, serving));
        Ok(())
    }
}

async fn serve<F>(build: F, mut s: Serving) -> Result<Serving, BoxError>
where
    F: FnOnce(&AppContext) -> Result<GrpcBuilder, BoxError>,
{
    let mut builder = build(&s.ctx)?;
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

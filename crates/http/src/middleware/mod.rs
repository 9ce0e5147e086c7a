//! The default middleware stack and its parts.
//!
//! From the outside in: request id → security headers → problem details → span and metrics →
//! panic catching → CORS → rate limit per client address → body limit → timeout → JWT
//! authentication → rate limit per subject → your layers → handler. The cheap rejections come
//! first: a client over its limit costs no body read and no signature check. Each part is
//! switched and tuned in the `http` configuration section (and `auth`
//! for JWT); [`crate::AppBuilder::layer`] adds any tower layer next to the handlers.
//!
//! CORS is tower-http's. For timeout, panic catching, body limit and request ids tower-http has
//! layers too; ours are kept where `cargo xtask bench layers` measured them faster in the same run
//! (each module says by how much, and what tower-http's lacks). Request-id echoing is the only
//! header propagation here, and there is no response compression.

pub mod auth;
pub mod body_limit;
pub mod catch_panic;
mod edge;
pub mod observe;
pub mod problem;
pub mod rate_limit;
pub mod request_id;
pub mod security_headers;
pub mod timeout;

use std::str::FromStr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use http::{HeaderName, HeaderValue, Method};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

use microframework_auth::{JwtConfig, JwtVerifier};
use microframework_core::request_id::REQUEST_ID_HEADER;

use crate::config::{CorsConfig, HttpConfig};
use edge::{EdgeLayer, EdgeParts};

pub use auth::{JwtAuthLayer, PublicRequest, require_auth};
pub use body_limit::BodyLimitLayer;
pub use catch_panic::CatchPanicLayer;
pub use observe::ObserveLayer;
pub use problem::ProblemLayer;
pub use rate_limit::{RateLimitLayer, RateLimiter, Stage};
pub use request_id::{RequestId, RequestIdLayer};
pub use security_headers::SecurityHeadersLayer;
pub use timeout::RequestTimeoutLayer;

/// What the default stack needs besides the `http` section.
#[derive(Clone)]
pub struct StackOptions {
    /// The `http` section.
    pub http: HttpConfig,
    /// JWT verification, when `auth.jwt` is configured.
    pub jwt: Option<(JwtVerifier, JwtConfig)>,
    /// The live rate limiter.
    pub rate_limiter: RateLimiter,
    /// Paths of the framework's own endpoints (never authenticated or rate limited).
    pub framework_paths: Vec<String>,
    /// Rules that exempt requests without a token from `auth.jwt.required`.
    pub public_requests: Vec<PublicRequest>,
}

/// Wraps `router` in the default middleware stack.
///
/// The whole stack is one tower layer applied once, so a request costs one boxed future for
/// the stack instead of one per middleware; every part keeps axum's body type. Its outer five
/// parts are fused into one layer with one future.
pub fn apply_default_stack(router: Router, opts: &StackOptions) -> Router {
    let h = &opts.http;
    // Request id, security headers, problem details, span and metrics, panic catching: one
    // layer with one future (see `edge`).
    let edge = EdgeLayer::new(EdgeParts {
        request_id: h
            .request_id
            .enabled
            .then(|| request_id::shared_name(HeaderName::from_str(&h.request_id.header).unwrap_or(REQUEST_ID_HEADER))),
        security_headers: h.security_headers.enabled.then(|| SecurityHeadersLayer::new(&h.security_headers)),
        problem: ProblemLayer::new(h.body_limit.enabled.then_some(h.body_limit.max.bytes())),
        observe: (h.trace.enabled || h.metrics.enabled).then(|| {
            ObserveLayer::new(h.trace.enabled, h.metrics.enabled, h.trace.access_log, opts.framework_paths.clone())
        }),
        catch_panic: h.catch_panic.enabled,
    });
    let stack = ServiceBuilder::new()
        .layer(edge)
        .option_layer(h.cors.enabled.then(|| cors_layer(&h.cors)))
        .layer(RateLimitLayer::new(opts.rate_limiter.clone(), Stage::Client))
        .option_layer(h.body_limit.enabled.then(|| BodyLimitLayer::new(h.body_limit.max.bytes())))
        .layer(if h.body_limit.enabled {
            DefaultBodyLimit::max(h.body_limit.max.as_usize())
        } else {
            DefaultBodyLimit::disable()
        })
        .option_layer(h.timeout.enabled.then(|| RequestTimeoutLayer::new(h.timeout.duration)))
        .option_layer(opts.jwt.as_ref().map(|(v, c)| {
            JwtAuthLayer::new(v.clone(), c.clone(), opts.framework_paths.clone())
                .with_public_requests(opts.public_requests.iter().cloned())
        }))
        .layer(RateLimitLayer::new(opts.rate_limiter.clone(), Stage::Subject));
    router.layer(stack)
}

fn cors_layer(cfg: &CorsConfig) -> CorsLayer {
    let mut layer = CorsLayer::new()
        .allow_methods(
            cfg.allowed_methods.iter().filter_map(|m| Method::from_bytes(m.as_bytes()).ok()).collect::<Vec<_>>(),
        )
        .allow_headers(
            cfg.allowed_headers.iter().filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok()).collect::<Vec<_>>(),
        )
        .expose_headers(
            cfg.exposed_headers.iter().filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok()).collect::<Vec<_>>(),
        )
        .max_age(cfg.max_age);
    layer = if cfg.allowed_origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        layer.allow_origin(cfg.allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect::<Vec<_>>())
    };
    if cfg.allow_credentials {
        layer = layer.allow_credentials(true);
    }
    layer
}

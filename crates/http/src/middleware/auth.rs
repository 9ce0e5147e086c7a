//! JWT authentication: verifies bearer tokens and puts their [`Claims`] in the request
//! extensions, where the `Claims` extractor finds them.
//!
//! - A request with an invalid token (expired, forged, `alg: none`, wrong issuer or audience)
//!   is answered with `401` and `WWW-Authenticate: Bearer error="invalid_token"`.
//! - A request without a token passes through, unless `auth.jwt.required` is set, its path is
//!   not in `auth.jwt.public_paths` and no [`PublicRequest`] rule accepts it.
//! - Routes opt in with the `Claims` extractor (401 when absent) or [`require_auth`]; the
//!   framework's own endpoints (health, metrics, docs) never require a token.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, header};
use tower::Layer;

use microframework_auth::gate::{Gate, GateLayer, GateService, Reject};
use microframework_auth::{AuthError, Claims, JwtConfig, JwtVerifier};

use crate::error::problem_response;

pub use microframework_auth::gate::PublicRequest;

/// Layer that verifies bearer tokens: the protocol-neutral [`Gate`] with HTTP's refusal
/// ([`reject`]).
#[derive(Clone, Debug)]
pub struct JwtAuthLayer {
    gate: Gate,
}

impl JwtAuthLayer {
    /// A layer over `verifier`; `framework_paths` (health, metrics, docs) are never checked.
    pub fn new(verifier: JwtVerifier, config: JwtConfig, framework_paths: Vec<String>) -> Self {
        Self { gate: Gate::new(verifier, config).exempt(framework_paths) }
    }

    /// Adds rules that exempt requests without a token from `auth.jwt.required`.
    pub fn with_public_requests(mut self, rules: impl IntoIterator<Item = PublicRequest>) -> Self {
        self.gate = self.gate.public_requests(rules);
        self
    }
}

impl<S> Layer<S> for JwtAuthLayer {
    type Service = JwtAuth<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GateLayer::new(Some(self.gate.clone()), ProblemReject).layer(inner)
    }
}

/// Service of [`JwtAuthLayer`].
pub type JwtAuth<S> = GateService<S, ProblemReject>;

/// HTTP's answer to a refused request: [`reject`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ProblemReject;

impl Reject<Body> for ProblemReject {
    fn reject(&self, err: &AuthError, _: &http::Extensions) -> Response<Body> {
        reject(err)
    }
}

/// The response for an authentication failure: `401` (or `503` when keys are unavailable)
/// problem details with a `WWW-Authenticate` challenge.
pub fn reject(err: &AuthError) -> Response {
    let mut res = problem_response(err.to_problem());
    if res.status() == http::StatusCode::UNAUTHORIZED
        && let Ok(v) = HeaderValue::from_str(&err.www_authenticate())
    {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

/// The layer returned by [`require_auth`].
pub type RequireAuthLayer = axum::middleware::FromFnLayer<RequireAuthFn, (), (Request<Body>,)>;

/// The check behind [`require_auth`].
pub type RequireAuthFn = fn(Request<Body>, axum::middleware::Next) -> BoxFuture<'static, Response>;

/// A route layer that answers `401` unless the request carries verified claims.
///
/// ```ignore
/// Router::new().route("/admin", post(handler)).route_layer(require_auth())
/// ```
pub fn require_auth() -> RequireAuthLayer {
    fn check(req: Request<Body>, next: axum::middleware::Next) -> BoxFuture<'static, Response> {
        Box::pin(async move {
            if req.extensions().get::<Claims>().is_some() {
                next.run(req).await
            } else {
                reject(&AuthError::MissingToken).into_response()
            }
        })
    }
    axum::middleware::from_fn(check as fn(_, _) -> _)
}

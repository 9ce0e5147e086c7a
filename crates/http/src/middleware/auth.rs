//! JWT authentication: verifies bearer tokens and puts their [`Claims`] in the request
//! extensions, where the `Claims` extractor finds them.
//!
//! - A request with an invalid token (expired, forged, `alg: none`, wrong issuer or audience)
//!   is answered with `401` and `WWW-Authenticate: Bearer error="invalid_token"`.
//! - A request without a token passes through, unless `auth.jwt.required` is set, its path is
//!   not in `auth.jwt.public_paths` and no [`PublicRequest`] rule accepts it.
//! - Routes opt in with the `Claims` extractor (401 when absent) or [`require_auth`]; the
//!   framework's own endpoints (health, metrics, docs) never require a token.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, Either};
use http::{HeaderMap, HeaderValue, Method, Request, Uri, header};
use tower::{Layer, Service};

use microframework_auth::{AuthError, Claims, JwtConfig, JwtVerifier, bearer_token};

use crate::config::path_matches;
use crate::error::problem_response;

/// Layer that verifies bearer tokens.
#[derive(Clone)]
pub struct JwtAuthLayer {
    verifier: JwtVerifier,
    policy: Arc<Policy>,
}

impl std::fmt::Debug for JwtAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthLayer").field("required", &self.policy.required).finish_non_exhaustive()
    }
}

/// A rule that lets a request without a token through when `auth.jwt.required` is on, in
/// addition to `auth.jwt.public_paths`: for requests a path alone cannot tell apart, such as a
/// browser's `GET` of an IDE page served on the same path as an API. It sees the method, URI and
/// headers; a request that does carry a token is verified as usual whatever the rules say.
pub type PublicRequest = Arc<dyn Fn(&Method, &Uri, &HeaderMap) -> bool + Send + Sync>;

#[derive(Clone)]
struct Policy {
    required: bool,
    config: JwtConfig,
    framework_paths: Vec<String>,
    public_requests: Vec<PublicRequest>,
}

impl JwtAuthLayer {
    /// A layer over `verifier`; `framework_paths` (health, metrics, docs) are never checked.
    pub fn new(verifier: JwtVerifier, config: JwtConfig, framework_paths: Vec<String>) -> Self {
        let policy = Policy { required: config.required, config, framework_paths, public_requests: Vec::new() };
        Self { verifier, policy: Arc::new(policy) }
    }

    /// Adds rules that exempt requests without a token from `auth.jwt.required`.
    pub fn with_public_requests(mut self, rules: impl IntoIterator<Item = PublicRequest>) -> Self {
        Arc::make_mut(&mut self.policy).public_requests.extend(rules);
        self
    }
}

impl Policy {
    /// Whether a request without a token must be refused.
    fn refuses_anonymous<B>(&self, req: &Request<B>) -> bool {
        self.required
            && !self.config.is_public(req.uri().path())
            && !self.public_requests.iter().any(|rule| rule(req.method(), req.uri(), req.headers()))
    }
}

impl<S> Layer<S> for JwtAuthLayer {
    type Service = JwtAuth<S>;
    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth { inner, verifier: self.verifier.clone(), policy: self.policy.clone() }
    }
}

/// Service of [`JwtAuthLayer`].
#[derive(Clone)]
pub struct JwtAuth<S> {
    inner: S,
    verifier: JwtVerifier,
    policy: Arc<Policy>,
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

impl<S, B> Service<Request<B>> for JwtAuth<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let path = req.uri().path();
        if path_matches(&self.policy.framework_paths, path) {
            return Either::Left(self.inner.call(req));
        }
        let token = match req.headers().get(header::AUTHORIZATION) {
            None => {
                if self.policy.refuses_anonymous(&req) {
                    let res = reject(&AuthError::MissingToken);
                    return Either::Right(Box::pin(async move { Ok(res) }));
                }
                return Either::Left(self.inner.call(req));
            }
            Some(value) => match value
                .to_str()
                .map_err(|_| AuthError::Malformed("the Authorization header is not ASCII".into()))
                .and_then(bearer_token)
            {
                Ok(t) => t.to_owned(),
                Err(e) => {
                    let res = reject(&e);
                    return Either::Right(Box::pin(async move { Ok(res) }));
                }
            },
        };
        let verifier = self.verifier.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(async move {
            match verifier.verify(&token).await {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                    inner.call(req).await
                }
                Err(e) => {
                    tracing::debug!(error = %e, "rejected bearer token");
                    Ok(reject(&e))
                }
            }
        }))
    }
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

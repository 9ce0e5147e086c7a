//! JWT authentication for gRPC: verifies `authorization: Bearer ...` metadata and puts the
//! [`Claims`] in the request extensions, where handlers read them with [`claims`].
//!
//! - A call with an invalid token (expired, forged, `alg: none`, wrong issuer or audience) is
//!   answered with `UNAUTHENTICATED` (`UNAVAILABLE` when the signing keys cannot be loaded), as a
//!   trailers-only response carrying a `google.rpc.ErrorInfo` (see [`status_from`](crate::status_from)).
//! - A call without a token passes through, unless [`JwtConfig::required`] is set and its path
//!   (`/package.Service/Method`) is not in [`JwtConfig::public_paths`] (`/package.Service/*`
//!   exempts a whole service).
//! - The health and reflection services are always exempt.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, header};
use http_body::Body;
use pin_project_lite::pin_project;
use tonic::Status;
use tower::{Layer, Service};

use microframework_auth::{AuthError, Claims, JwtConfig, JwtVerifier, bearer_token};

use crate::request_id::RequestId;
use crate::status::status_with_request_id;

/// Path prefixes never authenticated: the health and reflection services.
pub const EXEMPT_PREFIXES: [&str; 3] =
    ["/grpc.health.v1.Health/", "/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/"];

/// The verified claims of the call.
///
/// ```ignore
/// async fn say(&self, req: Request<SayRequest>) -> Result<Response<SayReply>, Status> {
///     let claims = microframework_grpc::claims(&req)?;
///     let user = claims.subject().unwrap_or_default();
///     // ...
/// }
/// ```
///
/// # Errors
///
/// `UNAUTHENTICATED` when the call carried no verified token.
pub fn claims<T>(request: &tonic::Request<T>) -> Result<&Claims, Status> {
    request.extensions().get::<Claims>().ok_or_else(|| {
        let err: microframework_core::Error = AuthError::MissingToken.into();
        let id = request.extensions().get::<RequestId>();
        status_with_request_id(&err, id.map(RequestId::as_str))
    })
}

/// Layer that verifies bearer tokens.
#[derive(Clone)]
pub struct JwtAuthLayer {
    verifier: JwtVerifier,
    config: Arc<JwtConfig>,
}

impl std::fmt::Debug for JwtAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthLayer").field("required", &self.config.required).finish_non_exhaustive()
    }
}

impl JwtAuthLayer {
    /// A layer over `verifier`, with `config`'s [`required`](JwtConfig::required) and
    /// [`public_paths`](JwtConfig::public_paths). When `config` is not
    /// [`enabled`](JwtConfig::enabled), tokens are ignored.
    pub fn new(verifier: JwtVerifier, config: JwtConfig) -> Self {
        Self { verifier, config: Arc::new(config) }
    }
}

impl<S> Layer<S> for JwtAuthLayer {
    type Service = JwtAuth<S>;
    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth { inner, auth: Some(self.clone()) }
    }
}

/// Service of [`JwtAuthLayer`] (a pass-through when built without a verifier).
#[derive(Clone)]
pub struct JwtAuth<S> {
    inner: S,
    auth: Option<JwtAuthLayer>,
}

impl<S> JwtAuth<S> {
    /// Wraps `inner`, verifying tokens with `auth` when it is `Some`.
    pub(crate) fn new(inner: S, auth: Option<JwtAuthLayer>) -> Self {
        Self { inner, auth }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for JwtAuth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth").field("inner", &self.inner).field("auth", &self.auth).finish()
    }
}

/// The response rejecting a call: a trailers-only gRPC response.
fn reject<B: Default>(err: AuthError, request_id: Option<&RequestId>) -> Response<B> {
    tracing::debug!(error = %err, "rejected the call's bearer token");
    let err: microframework_core::Error = err.into();
    status_with_request_id(&err, request_id.map(RequestId::as_str)).into_http()
}

type Verify = Pin<Box<dyn Future<Output = Result<Claims, AuthError>> + Send>>;

impl<S, B, ResB> Service<Request<B>> for JwtAuth<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    ResB: Body + Default,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = AuthFuture<S, B, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let Some(auth) = self.auth.as_ref().filter(|a| a.config.enabled) else {
            return AuthFuture::calling(self.inner.call(req));
        };
        let path = req.uri().path();
        if EXEMPT_PREFIXES.iter().any(|p| path.starts_with(p)) {
            return AuthFuture::calling(self.inner.call(req));
        }
        let request_id = req.extensions().get::<RequestId>();
        let token = match req.headers().get(header::AUTHORIZATION) {
            None => {
                if auth.config.required && !auth.config.is_public(path) {
                    return AuthFuture::rejected(reject(AuthError::MissingToken, request_id));
                }
                return AuthFuture::calling(self.inner.call(req));
            }
            Some(value) => match value
                .to_str()
                .map_err(|_| AuthError::Malformed("the authorization metadata is not ASCII".into()))
                .and_then(bearer_token)
            {
                Ok(token) => token.to_owned(),
                Err(e) => return AuthFuture::rejected(reject(e, request_id)),
            },
        };
        let verifier = auth.verifier.clone();
        let verify: Verify = Box::pin(async move { verifier.verify(&token).await });
        // Take the service that was made ready; leave a clone for the next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        AuthFuture { state: AuthState::Verifying { verify, pending: Some((inner, req)) } }
    }
}

pin_project! {
    #[project = AuthProj]
    enum AuthState<S, B, ResB>
    where
        S: Service<Request<B>>,
    {
        // Verifying the token.
        Verifying { verify: Verify, pending: Option<(S, Request<B>)> },
        // Calling the inner service.
        Calling { #[pin] fut: S::Future },
        // Answering with a rejection.
        Rejected { res: Option<Response<ResB>> },
    }
}

pin_project! {
    /// Response future of [`JwtAuth`].
    pub struct AuthFuture<S, B, ResB>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: AuthState<S, B, ResB>,
    }
}

impl<S: Service<Request<B>>, B, ResB> AuthFuture<S, B, ResB> {
    fn calling(fut: S::Future) -> Self {
        Self { state: AuthState::Calling { fut } }
    }

    fn rejected(res: Response<ResB>) -> Self {
        Self { state: AuthState::Rejected { res: Some(res) } }
    }
}

impl<S, B, ResB> Future for AuthFuture<S, B, ResB>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    ResB: Default,
{
    type Output = Result<Response<ResB>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                AuthProj::Verifying { verify, pending } => {
                    let outcome = std::task::ready!(verify.as_mut().poll(cx));
                    let Some((mut inner, mut req)) = pending.take() else {
                        return Poll::Pending;
                    };
                    match outcome {
                        Ok(claims) => {
                            req.extensions_mut().insert(claims);
                            let fut = inner.call(req);
                            state.set(AuthState::Calling { fut });
                        }
                        Err(e) => {
                            let res = reject(e, req.extensions().get::<RequestId>());
                            return Poll::Ready(Ok(res));
                        }
                    }
                }
                AuthProj::Calling { fut } => return fut.poll(cx),
                AuthProj::Rejected { res } => {
                    return match res.take() {
                        Some(res) => Poll::Ready(Ok(res)),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}

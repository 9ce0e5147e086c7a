//! The protocol-neutral JWT gate: one decision and one verification path for every protocol.
//!
//! HTTP, gRPC, and the upgrade requests of GraphQL subscriptions and WebSocket are all HTTP
//! requests, so they share this tower layer: a [`Gate`] decides from the request alone whether to
//! pass it, refuse it or verify its bearer token (with the service's one [`JwtVerifier`], one
//! JWKS cache); verified [`Claims`] go into the request extensions. What a refusal looks like is
//! the only protocol-specific part: an adapter implements [`Reject`] (`401` problem+json with a
//! `WWW-Authenticate` challenge for HTTP, a trailers-only `UNAUTHENTICATED` for gRPC).
//!
//! - A request with an invalid token (expired, forged, `alg: none`, wrong issuer or audience)
//!   is refused.
//! - A request without a token passes, unless `auth.jwt.required` is on, its path is not in
//!   `auth.jwt.public_paths` and no public-request rule accepts it.
//! - Exempt paths (the framework's endpoints, gRPC health and reflection) are never checked.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Extensions, HeaderMap, Method, Request, Response, Uri, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::claims::Claims;
use crate::config::JwtConfig;
use crate::error::AuthError;
use crate::verifier::{JwtVerifier, bearer_token};

/// A rule that lets a request without a token through when `auth.jwt.required` is on, in
/// addition to `auth.jwt.public_paths`: for requests a path alone cannot tell apart, such as a
/// browser's `GET` of an IDE page served on the same path as an API. A request that does carry a
/// token is verified whatever the rules say.
pub type PublicRequest = Arc<dyn Fn(&Method, &Uri, &HeaderMap) -> bool + Send + Sync>;

/// What the gate decided for a request.
#[derive(Debug)]
pub enum Admission {
    /// Let it through without claims.
    Pass,
    /// Refuse it.
    Refuse(AuthError),
    /// Verify this bearer token first.
    Verify(String),
}

/// The decision of which requests need a verified token, and the verifier that checks them.
#[derive(Clone)]
pub struct Gate {
    verifier: JwtVerifier,
    policy: Arc<Policy>,
}

#[derive(Clone)]
struct Policy {
    config: JwtConfig,
    exempt: Vec<String>,
    public_requests: Vec<PublicRequest>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("enabled", &self.policy.config.enabled)
            .field("required", &self.policy.config.required)
            .field("exempt", &self.policy.exempt)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate over `verifier` with `config`'s `enabled`, `required` and `public_paths`. When
    /// `config` is not enabled, every request passes and tokens are ignored.
    pub fn new(verifier: JwtVerifier, config: JwtConfig) -> Self {
        Self { verifier, policy: Arc::new(Policy { config, exempt: Vec::new(), public_requests: Vec::new() }) }
    }

    /// Paths never checked, tokens or not: exact, or a prefix ending in `*`.
    #[must_use]
    pub fn exempt(mut self, patterns: impl IntoIterator<Item = String>) -> Self {
        self.policy_mut().exempt.extend(patterns);
        self
    }

    /// Rules that exempt requests without a token from `auth.jwt.required`.
    #[must_use]
    pub fn public_requests(mut self, rules: impl IntoIterator<Item = PublicRequest>) -> Self {
        self.policy_mut().public_requests.extend(rules);
        self
    }

    fn policy_mut(&mut self) -> &mut Policy {
        Arc::make_mut(&mut self.policy)
    }

    /// The verifier.
    pub fn verifier(&self) -> &JwtVerifier {
        &self.verifier
    }

    /// Decides what to do with `req`, from its path and headers alone.
    pub fn admit<B>(&self, req: &Request<B>) -> Admission {
        let policy = &*self.policy;
        if !policy.config.enabled {
            return Admission::Pass;
        }
        let path = req.uri().path();
        if policy.exempt.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => p == path,
        }) {
            return Admission::Pass;
        }
        match req.headers().get(header::AUTHORIZATION) {
            None => {
                let anonymous_ok = !policy.config.required
                    || policy.config.is_public(path)
                    || policy.public_requests.iter().any(|rule| rule(req.method(), req.uri(), req.headers()));
                if anonymous_ok { Admission::Pass } else { Admission::Refuse(AuthError::MissingToken) }
            }
            Some(value) => match value
                .to_str()
                .map_err(|_| AuthError::Malformed("the authorization header is not ASCII".into()))
                .and_then(bearer_token)
            {
                Ok(token) => Admission::Verify(token.to_owned()),
                Err(e) => Admission::Refuse(e),
            },
        }
    }
}

/// How a protocol answers a refused request: the only protocol-specific part of the gate.
pub trait Reject<ResB>: Clone + Send + Sync + 'static {
    /// The response refusing a request with `err`; `extensions` are the request's (a request id,
    /// say).
    fn reject(&self, err: &AuthError, extensions: &Extensions) -> Response<ResB>;
}

/// The tower layer of a [`Gate`] with a protocol's [`Reject`].
#[derive(Clone, Debug)]
pub struct GateLayer<R> {
    gate: Option<Gate>,
    reject: R,
}

impl<R> GateLayer<R> {
    /// Checks requests with `gate`; `None` passes every request through (so that a stack with
    /// and without authentication has one type).
    pub fn new(gate: Option<Gate>, reject: R) -> Self {
        Self { gate, reject }
    }
}

impl<S, R: Clone> Layer<S> for GateLayer<R> {
    type Service = GateService<S, R>;
    fn layer(&self, inner: S) -> Self::Service {
        GateService { inner, gate: self.gate.clone(), reject: self.reject.clone() }
    }
}

/// Service of [`GateLayer`].
#[derive(Clone, Debug)]
pub struct GateService<S, R> {
    inner: S,
    gate: Option<Gate>,
    reject: R,
}

type Verify = Pin<Box<dyn Future<Output = Result<Claims, AuthError>> + Send>>;

impl<S, R, B, ResB> Service<Request<B>> for GateService<S, R>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    R: Reject<ResB>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = GateFuture<S, R, B, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let Some(gate) = &self.gate else {
            return GateFuture { state: GateState::Calling { fut: self.inner.call(req) } };
        };
        match gate.admit(&req) {
            Admission::Pass => GateFuture { state: GateState::Calling { fut: self.inner.call(req) } },
            Admission::Refuse(e) => {
                tracing::debug!(error = %e, "refused the request's credentials");
                let res = self.reject.reject(&e, req.extensions());
                GateFuture { state: GateState::Refused { res: Some(res) } }
            }
            Admission::Verify(token) => {
                let verifier = gate.verifier.clone();
                let verify: Verify = Box::pin(async move { verifier.verify(&token).await });
                // Take the service that was made ready; leave a clone for the next call.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                GateFuture {
                    state: GateState::Verifying { verify, pending: Some((inner, req)), reject: self.reject.clone() },
                }
            }
        }
    }
}

pin_project! {
    #[project = GateProj]
    enum GateState<S, R, B, ResB>
    where
        S: Service<Request<B>>,
    {
        // Verifying the token.
        Verifying { verify: Verify, pending: Option<(S, Request<B>)>, reject: R },
        // Calling the inner service.
        Calling { #[pin] fut: S::Future },
        // Answering with a refusal.
        Refused { res: Option<Response<ResB>> },
    }
}

pin_project! {
    /// Response future of [`GateService`].
    pub struct GateFuture<S, R, B, ResB>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: GateState<S, R, B, ResB>,
    }
}

impl<S, R, B, ResB> Future for GateFuture<S, R, B, ResB>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    R: Reject<ResB>,
{
    type Output = Result<Response<ResB>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                GateProj::Verifying { verify, pending, reject } => {
                    let outcome = std::task::ready!(verify.as_mut().poll(cx));
                    let Some((mut inner, mut req)) = pending.take() else {
                        return Poll::Pending;
                    };
                    match outcome {
                        Ok(claims) => {
                            req.extensions_mut().insert(claims);
                            let fut = inner.call(req);
                            state.set(GateState::Calling { fut });
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "rejected bearer token");
                            return Poll::Ready(Ok(reject.reject(&e, req.extensions())));
                        }
                    }
                }
                GateProj::Calling { fut } => return fut.poll(cx),
                GateProj::Refused { res } => {
                    return match res.take() {
                        Some(res) => Poll::Ready(Ok(res)),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt;

    use super::*;
    use crate::signer::JwtSigner;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    async fn gate(required: bool) -> Gate {
        let config = JwtConfig {
            secret: Some(SECRET.into()),
            required,
            public_paths: vec!["/public/*".into()],
            ..JwtConfig::default()
        };
        let verifier = JwtVerifier::from_config(&config).await.unwrap();
        Gate::new(verifier, config).exempt(["/health".to_owned(), "/grpc.health.v1.Health/*".to_owned()])
    }

    fn request(path: &str, authorization: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri(path);
        if let Some(a) = authorization {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(()).unwrap()
    }

    #[tokio::test]
    async fn admission_follows_the_policy() {
        let g = gate(true).await;
        assert!(matches!(g.admit(&request("/orders", None)), Admission::Refuse(AuthError::MissingToken)));
        assert!(matches!(g.admit(&request("/public/x", None)), Admission::Pass));
        assert!(matches!(g.admit(&request("/health", Some("Bearer junk"))), Admission::Pass), "exempt paths");
        assert!(matches!(g.admit(&request("/grpc.health.v1.Health/Check", None)), Admission::Pass));
        assert!(matches!(g.admit(&request("/orders", Some("Basic abc"))), Admission::Refuse(_)));
        assert!(matches!(g.admit(&request("/orders", Some("Bearer a.b.c"))), Admission::Verify(t) if t == "a.b.c"));
        assert!(
            matches!(g.admit(&request("/public/x", Some("Bearer a.b.c"))), Admission::Verify(_)),
            "a token on a public path is still verified"
        );
        let g = g.public_requests([Arc::new(|m: &Method, _: &Uri, _: &HeaderMap| m == Method::GET) as PublicRequest]);
        assert!(matches!(g.admit(&request("/orders", None)), Admission::Pass), "a public-request rule");
        let optional = gate(false).await;
        assert!(matches!(optional.admit(&request("/orders", None)), Admission::Pass));
    }

    #[derive(Clone)]
    struct Teapot;

    impl Reject<String> for Teapot {
        fn reject(&self, err: &AuthError, _: &Extensions) -> Response<String> {
            let mut res = Response::new(err.to_string());
            *res.status_mut() = http::StatusCode::IM_A_TEAPOT;
            res
        }
    }

    #[tokio::test]
    async fn verified_claims_reach_the_service_and_refusals_use_the_adapter() {
        let inner = tower::service_fn(|req: Request<()>| async move {
            let sub = req.extensions().get::<Claims>().and_then(|c| c.subject().map(str::to_owned));
            Ok::<_, Infallible>(Response::new(sub.unwrap_or_else(|| "anonymous".into())))
        });
        let svc = GateLayer::new(Some(gate(true).await), Teapot).layer(inner);
        let token =
            JwtSigner::hs256(SECRET.as_bytes()).sign(&serde_json::json!({"sub": "ada", "exp": u32::MAX})).unwrap();
        let res = svc.clone().oneshot(request("/orders", Some(&format!("Bearer {token}")))).await.unwrap();
        assert_eq!(res.into_body(), "ada");
        let res = svc.clone().oneshot(request("/orders", Some("Bearer a.b.c"))).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::IM_A_TEAPOT);
        let res = svc.clone().oneshot(request("/orders", None)).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::IM_A_TEAPOT);
        let res = svc.oneshot(request("/public/x", None)).await.unwrap();
        assert_eq!(res.into_body(), "anonymous");
        let pass = GateLayer::new(None, Teapot).layer(tower::service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new("through".to_owned()))
        }));
        assert_eq!(pass.oneshot(request("/orders", None)).await.unwrap().into_body(), "through");
    }
}

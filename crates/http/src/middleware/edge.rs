//! The outer part of the default stack as one layer: request id, security headers, problem
//! details, span and metrics, panic catching.
//!
//! Each of these is a layer of its own too ([`RequestIdLayer`](super::RequestIdLayer),
//! [`SecurityHeadersLayer`], [`ProblemLayer`], [`ObserveLayer`],
//! [`CatchPanicLayer`](super::CatchPanicLayer)), and this layer does what they do, in the same
//! order, with the same code. Stacked, every one of them moved the request into the next
//! `call`, wrapped the next one's future in its own (so the nested future was copied again at
//! each level), and the switched-off ones added an `Either` level; here a request is one `call`
//! and one future, and the response headers (the id and the security headers) are added in one
//! pass with one reservation. `cargo xtask bench profile` measures the difference (the "default
//! stack" and "service router" rows against the layers alone).

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::catch_panic::panic_response;
use super::observe::{Observation, ObserveLayer};
use super::problem::{Collecting, Finished, ProblemLayer, ReqInfo, finish};
use super::request_id;
use super::security_headers::SecurityHeadersLayer;

/// The parts of [`EdgeLayer`], each `None` (or `false`) when switched off.
#[derive(Clone, Debug, Default)]
pub(crate) struct EdgeParts {
    /// The request-id header, when request ids are on.
    pub(crate) request_id: Option<HeaderName>,
    /// The security headers, when on.
    pub(crate) security_headers: Option<SecurityHeadersLayer>,
    /// Problem details (always on; it carries the body limit for the 413 message).
    pub(crate) problem: ProblemLayer,
    /// Spans and metrics, when either is on.
    pub(crate) observe: Option<ObserveLayer>,
    /// Whether panics become `500` responses.
    pub(crate) catch_panic: bool,
}

/// Layer of the default stack's outer part (see the module documentation).
#[derive(Clone, Debug)]
pub(crate) struct EdgeLayer {
    parts: Arc<EdgeParts>,
}

impl EdgeLayer {
    pub(crate) fn new(parts: EdgeParts) -> Self {
        Self { parts: Arc::new(parts) }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Edge { inner, parts: self.parts.clone() }
    }
}

/// Service of [`EdgeLayer`].
#[derive(Clone, Debug)]
pub(crate) struct Edge<S> {
    inner: S,
    parts: Arc<EdgeParts>,
}

impl<S, B> Service<Request<B>> for Edge<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let parts = &self.parts;
        let id = parts.request_id.as_ref().map(|header| request_id::assign(header, &mut req));
        let info = ReqInfo::new(&req, &parts.problem);
        let obs = parts.observe.as_ref().map(|o| o.begin(&req));
        let called = {
            let _enter = obs.as_ref().map(|o| o.span().enter());
            if parts.catch_panic {
                catch_unwind(AssertUnwindSafe(|| self.inner.call(req)))
            } else {
                Ok(self.inner.call(req))
            }
        };
        let state = match called {
            Ok(fut) => State::Inner { fut, obs, info: Some(info) },
            Err(err) => {
                // Answered and observed at once; the span closes with `obs` here.
                let _enter = obs.as_ref().map(|o| o.span().enter());
                let res = panic_response(err);
                if let Some(o) = obs.as_ref() {
                    o.end(&res);
                }
                State::Panicked { res: Some(res), info: Some(info) }
            }
        };
        EdgeFuture { state, id, parts: self.parts.clone() }
    }
}

pin_project! {
    /// Response future of [`Edge`].
    pub(crate) struct EdgeFuture<F> {
        #[pin]
        state: State<F>,
        id: Option<HeaderValue>,
        parts: Arc<EdgeParts>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] fut: F, obs: Option<Observation>, info: Option<ReqInfo> },
        Panicked { res: Option<Response<Body>>, info: Option<ReqInfo> },
        Collecting { fut: Collecting },
    }
}

impl<F, E> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let (res, obs, info) = match this.state.as_mut().project() {
                StateProj::Inner { fut, obs, info } => {
                    let res = {
                        let _enter = obs.as_ref().map(|o| o.span().enter());
                        let polled = if this.parts.catch_panic {
                            match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
                                Ok(polled) => polled,
                                Err(err) => Poll::Ready(Ok(panic_response(err))),
                            }
                        } else {
                            fut.poll(cx)
                        };
                        let res = std::task::ready!(polled)?;
                        if let Some(o) = obs.as_ref() {
                            o.end(&res);
                        }
                        res
                    };
                    (res, obs.take(), info.take())
                }
                StateProj::Panicked { res, info } => {
                    let res = res.take().unwrap_or_else(|| panic_response(Box::new("polled after completion")));
                    (res, None, info.take())
                }
                StateProj::Collecting { fut } => {
                    let res = std::task::ready!(fut.as_mut().poll(cx));
                    return Poll::Ready(Ok(headers(res, this.id.take(), this.parts)));
                }
            };
            // The span closes here, before an error body is read, as the layers did.
            drop(obs);
            let Some(info) = info else { return Poll::Ready(Ok(headers(res, this.id.take(), this.parts))) };
            match finish(res, info) {
                Finished::Ready(res) => return Poll::Ready(Ok(headers(res, this.id.take(), this.parts))),
                Finished::Collect(fut) => this.state.set(State::Collecting { fut }),
            }
        }
    }
}

/// The security headers and the request id, in one pass with one reservation.
fn headers(mut res: Response<Body>, id: Option<HeaderValue>, parts: &EdgeParts) -> Response<Body> {
    let map = res.headers_mut();
    map.reserve(parts.security_headers.as_ref().map_or(0, SecurityHeadersLayer::len) + usize::from(id.is_some()));
    if let Some(security) = &parts.security_headers {
        security.apply(map);
    }
    if let (Some(name), Some(id)) = (&parts.request_id, id) {
        map.insert(name, id);
    }
    res
}

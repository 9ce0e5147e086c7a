//! Request timeout: a request that takes longer than the configured duration is answered with
//! `503` problem details (code `timeout`) and its handler future is dropped.
//!
//! Why not tower-http's `TimeoutLayer`: `cargo xtask bench layers` (docs/benchmarks.md, "HTTP
//! middleware layers") measured it configured to answer 503 at about 1.65× the ns/request of this
//! layer through the same router (1.64–1.69 in seven runs, 2026-12-03): a layer cost of about
//! 700 ns against 110–155 ns, because it polls its `Sleep` before the handler and so registers a
//! timer with tokio on every request, where this layer polls the handler first and touches the
//! timer only when the handler is pending. With a handler pending once both register it, and
//! tower-http's measured 0–3% faster (0.97–1.00×, about 20 ns); that alone would not outweigh
//! what follows.
//! It also lacks what the problem layer relies on: its answer is a bare status with an empty body
//! (indistinguishable from a handler's own 503, so the code `timeout` and the detail would be
//! lost), and it puts no `RequestDeadline` on error responses, which bounds how long the
//! problem layer reads an error body.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service};

use microframework_core::{ErrorKind, ProblemDetails};

use crate::error::problem_response;

/// Layer that bounds how long a request may take.
#[derive(Clone, Debug)]
pub struct RequestTimeoutLayer {
    duration: Duration,
}

impl RequestTimeoutLayer {
    /// Requests taking longer than `duration` get `503`.
    pub fn new(duration: Duration) -> Self {
        Self { duration }
    }
}

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout { inner, duration: self.duration }
    }
}

/// Service of [`RequestTimeoutLayer`].
#[derive(Clone, Debug)]
pub struct RequestTimeout<S> {
    inner: S,
    duration: Duration,
}

impl<S, B> Service<Request<B>> for RequestTimeout<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = RequestTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        RequestTimeoutFuture {
            inner: self.inner.call(req),
            sleep: tokio::time::sleep(self.duration),
            duration: self.duration,
        }
    }
}

pin_project! {
    /// Response future of [`RequestTimeout`].
    pub struct RequestTimeoutFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        duration: Duration,
    }
}

/// The deadline of a request, put in the extensions of its error responses so that the layers
/// outside (the problem layer reading an error body) stop at it too. Only error responses carry
/// it, so a successful request costs nothing more.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestDeadline(pub(crate) tokio::time::Instant);

impl<F, E> Future for RequestTimeoutFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(mut res) = this.inner.poll(cx) {
            if let Ok(r) = &mut res
                && r.status().as_u16() >= 400
            {
                r.extensions_mut().insert(RequestDeadline(this.sleep.deadline()));
            }
            return Poll::Ready(res);
        }
        std::task::ready!(this.sleep.poll(cx));
        let detail = format!("The request did not complete within {}.", humantime::format_duration(*this.duration));
        Poll::Ready(Ok(problem_response(ProblemDetails::new(ErrorKind::Timeout, detail))))
    }
}

//! Panic catching: a panic in a handler (or an inner layer) becomes a `500` problem response, is
//! logged with the request's span, and the connection and process carry on.
//!
//! Why not tower-http's `CatchPanicLayer`: configured with a panic handler answering the same
//! problem response, it behaves alike, but `cargo xtask bench layers` (docs/benchmarks.md, "HTTP
//! middleware layers") measured it at 1.03–1.09× the ns/request of this layer through the same
//! router (seven runs, 2026-12-03; 25–70 ns more per request, ours faster in every round): it boxes
//! every response body into its `UnsyncBoxBody`, which the layers around it then box again into
//! axum's `Body`, where this layer keeps axum's body as it is.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use microframework_core::{ErrorKind, ProblemDetails};

use crate::error::problem_response;

/// Layer that turns panics into `500` responses.
#[derive(Clone, Copy, Debug, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

/// Service of [`CatchPanicLayer`].
#[derive(Clone, Debug)]
pub struct CatchPanic<S> {
    inner: S,
}

/// The `500` answer to a caught panic, which it logs.
pub(crate) fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = if let Some(s) = err.downcast_ref::<String>() {
        s.as_str()
    } else if let Some(s) = err.downcast_ref::<&str>() {
        s
    } else {
        "unknown panic payload"
    };
    tracing::error!(panic = message, "handler panicked; answered 500");
    problem_response(ProblemDetails::new(ErrorKind::Internal, "An unexpected error occurred."))
}

impl<S, B> Service<Request<B>> for CatchPanic<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = CatchPanicFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(future) => CatchPanicFuture { kind: Kind::Future { future } },
            Err(err) => CatchPanicFuture { kind: Kind::Panicked { err: Some(err) } },
        }
    }
}

pin_project! {
    /// Response future of [`CatchPanic`].
    pub struct CatchPanicFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Future { #[pin] future: F },
        Panicked { err: Option<Box<dyn Any + Send + 'static>> },
    }
}

impl<F, E> Future for CatchPanicFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Future { future } => match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                Ok(poll) => poll,
                Err(err) => Poll::Ready(Ok(panic_response(err))),
            },
            KindProj::Panicked { err } => {
                let err = err.take().unwrap_or_else(|| Box::new("polled after completion"));
                Poll::Ready(Ok(panic_response(err)))
            }
        }
    }
}

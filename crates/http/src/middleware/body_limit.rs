//! Request body size limit.
//!
//! A request whose `Content-Length` exceeds the limit is refused with `413` before the handler
//! runs. Bodies without a length (chunked) are limited while they are read by the body
//! extractors (`Json`, `Bytes`, `String`, forms), which honour the same limit through axum's
//! `DefaultBodyLimit`; a handler that streams the raw `Body` applies its own limit.
//!
//! Why not tower-http's `RequestBodyLimitLayer`: it would answer the same (its `413 text/plain`
//! becomes the same problem details in the problem layer) and it would also limit bodies without
//! a length read as a raw stream, but `cargo xtask bench layers` (docs/benchmarks.md, "HTTP
//! middleware layers") measured it, with `DefaultBodyLimit::disable()`, at 1.01–1.06× the
//! ns/request of this layer plus `DefaultBodyLimit::max` for a 64-byte body read through the same
//! router (seven runs, 2026-12-03; ours had the lower median in every run, by 10–50 ns per
//! request, though in two of the six runs with a control row the rounds stayed within the
//! control's noise band): it wraps every request body in `Limited` and every response body in
//! its own type, and both are boxed again into axum's `Body`. Refusing a declared length over
//! the limit is the one path where its stack was faster (0.94–0.96×: this layer's problem
//! response is serialised, then serialised again by the problem layer), and that path is rare.

use std::task::{Context, Poll};

use axum::body::Body;
use futures_util::future::{Either, Ready, ready};
use http::{Request, Response, header};
use tower::{Layer, Service};

use microframework_core::{ErrorKind, ProblemDetails};

use crate::error::problem_response;

/// Layer that refuses declared bodies larger than `max` bytes.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimitLayer {
    max: u64,
}

impl BodyLimitLayer {
    /// A limit of `max` bytes.
    pub fn new(max: u64) -> Self {
        Self { max }
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BodyLimit { inner, max: self.max }
    }
}

/// Service of [`BodyLimitLayer`].
#[derive(Clone, Debug)]
pub struct BodyLimit<S> {
    inner: S,
    max: u64,
}

impl<S, B> Service<Request<B>> for BodyLimit<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        match declared {
            Some(len) if len > self.max => {
                let detail = format!("The request body exceeds the limit of {} bytes.", self.max);
                Either::Right(ready(Ok(problem_response(ProblemDetails::new(ErrorKind::PayloadTooLarge, detail)))))
            }
            _ => Either::Left(self.inner.call(req)),
        }
    }
}

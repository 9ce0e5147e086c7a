//! Request ids: accepted from the client's `x-request-id` when well-formed, generated otherwise,
//! stored in the request extensions and echoed on the response. The id is
//! [`microframework_core::RequestId`], the same type gRPC calls carry.
//!
//! Why not tower-http's `SetRequestIdLayer` + `PropagateRequestIdLayer`: `cargo xtask bench
//! layers` (docs/benchmarks.md, "HTTP middleware layers") measured the pair at 1.05–1.12× the
//! ns/request of this layer through the same router (seven runs, 2026-12-03; 50–135 ns more per
//! request, ours faster in every round), whether the id is generated (by its `MakeRequestUuid` or
//! by our generator) or the client's. It also keeps any client-supplied value (no check of length
//! or characters before the id is logged and echoed; its maker runs only when the header is
//! absent) and stores its own `tower_http::request_id::RequestId`, not the
//! [`microframework_core::RequestId`] that the problem layer, the request span and gRPC read.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use microframework_core::REQUEST_ID_HEADER;
pub use microframework_core::RequestId;

/// Layer that assigns request ids.
#[derive(Clone, Debug)]
pub struct RequestIdLayer {
    header: HeaderName,
}

impl RequestIdLayer {
    /// Uses `header` (normally `x-request-id`).
    pub fn new(header: HeaderName) -> Self {
        Self { header: shared_name(header) }
    }
}

/// `header`, as the static name when it is `x-request-id`: a static name clones without
/// touching the allocator on every request.
pub(crate) fn shared_name(header: HeaderName) -> HeaderName {
    if header == REQUEST_ID_HEADER { REQUEST_ID_HEADER } else { header }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner, header: self.header.clone() }
    }
}

/// Service of [`RequestIdLayer`].
#[derive(Clone, Debug)]
pub struct RequestIdService<S> {
    inner: S,
    header: HeaderName,
}

impl<S, B, ResB> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = assign(&self.header, &mut req);
        RequestIdFuture { inner: self.inner.call(req), header: Some((self.header.clone(), id)) }
    }
}

/// Gives `req` its id (the client's in `header` when acceptable, a new one otherwise, then also
/// in `header`), stores it in the extensions, and returns it for the response.
pub(crate) fn assign<B>(header: &HeaderName, req: &mut Request<B>) -> HeaderValue {
    let id = match req.headers().get(header).and_then(RequestId::from_header) {
        Some(id) => id.0,
        None => {
            let v = RequestId::generate().0;
            req.headers_mut().insert(header.clone(), v.clone());
            v
        }
    };
    req.extensions_mut().insert(RequestId(id.clone()));
    id
}

pin_project! {
    /// Response future of [`RequestIdService`].
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: F,
        header: Option<(HeaderName, HeaderValue)>,
    }
}

impl<F, ResB, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.inner.poll(cx))?;
        if let Some((name, value)) = this.header.take() {
            res.headers_mut().insert(name, value);
        }
        Poll::Ready(Ok(res))
    }
}

//! Request ids: accepted from the client's `x-request-id` metadata when well-formed, generated
//! otherwise, put in the request extensions and metadata, and echoed in the response headers
//! (initial metadata).
//!
//! While a call is served, its id is also available to any code running in the call's task
//! through [`current_request_id`], which is how [`status_from`](crate::status_from) and the
//! [`ClientInterceptor`](crate::ClientInterceptor) find it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

pub use microframework_core::{REQUEST_ID_HEADER, RequestId};

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The request id of the call being served by the current task, if any.
///
/// Set by the interceptor stack while the handler runs (unary handlers, and the streams of
/// streaming responses while they are polled). Not set in tasks the handler spawns: pass the id
/// along, or read it from the request extensions.
pub fn current_request_id() -> Option<RequestId> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The request id of `request` (set by the interceptor stack).
pub fn request_id<T>(request: &tonic::Request<T>) -> Option<&RequestId> {
    request.extensions().get::<RequestId>()
}

/// Layer that assigns request ids (the outermost layer of the gRPC stack).
#[derive(Clone, Debug, Default)]
pub struct RequestIdLayer {
    _priv: (),
}

impl RequestIdLayer {
    /// A new layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// Service of [`RequestIdLayer`].
#[derive(Clone, Debug)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B, ResB> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<RequestIdBody<ResB>>;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = match req.headers().get(REQUEST_ID_HEADER).and_then(RequestId::from_header) {
            Some(id) => id,
            None => {
                let id = RequestId::generate();
                req.headers_mut().insert(REQUEST_ID_HEADER, id.0.clone());
                id
            }
        };
        req.extensions_mut().insert(id.clone());
        let inner = CURRENT.sync_scope(id.clone(), || self.inner.call(req));
        RequestIdFuture { inner: CURRENT.scope(id.clone(), inner), id: Some(id) }
    }
}

pin_project! {
    /// Response future of [`RequestIdService`].
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: TaskLocalFuture<RequestId, F>,
        id: Option<RequestId>,
    }
}

impl<F, ResB, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<RequestIdBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll(cx))?;
        let id = this.id.take().unwrap_or_else(RequestId::generate);
        let (mut parts, body) = res.into_parts();
        parts.headers.insert(REQUEST_ID_HEADER, id.0.clone());
        Poll::Ready(Ok(Response::from_parts(parts, RequestIdBody { inner: body, id })))
    }
}

pin_project! {
    /// Response body of [`RequestIdService`]: polls the inner body with the call's request id set
    /// (see [`current_request_id`]), so that streaming handlers see it too.
    pub struct RequestIdBody<B> {
        #[pin]
        inner: B,
        id: RequestId,
    }
}

impl<B: Body> Body for RequestIdBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let inner = this.inner;
        CURRENT.sync_scope(this.id.clone(), || inner.poll_frame(cx))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Runs `f` with `id` as the current request id.
#[cfg(test)]
pub(crate) fn scoped<R>(id: RequestId, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(id, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_id_is_scoped() {
        assert_eq!(current_request_id(), None);
        let id = RequestId::parse("abc").unwrap();
        assert_eq!(scoped(id.clone(), current_request_id), Some(id));
    }
}

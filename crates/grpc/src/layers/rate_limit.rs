//! Rate limiting of calls: a call over the limit is answered `RESOURCE_EXHAUSTED` with a
//! `google.rpc.RetryInfo` detail saying when to retry, before it reaches the service.
//!
//! The layer asks a [`RateCheck`] whether to refuse a call. The stack has two: one before
//! authentication (per client address) and one after (per authenticated subject);
//! `Service::grpc` in the facade passes the HTTP layer's limiter (`http.rate_limit`), so that REST
//! requests and gRPC calls of one client share its buckets. The health and reflection services
//! are never limited.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use microframework_core::{Error, ErrorKind};
use pin_project_lite::pin_project;
use tonic::Status;
use tonic_types::StatusExt;
use tower::{Layer, Service};

use crate::auth::EXEMPT_PREFIXES;
use crate::request_id::RequestId;
use crate::status::{code_for, error_details};

/// Decides whether a call must wait: `Some(wait)` refuses it (retry after `wait`), `None` lets it
/// through. It sees the call's HTTP/2 request with `ConnectInfo<SocketAddr>` for the peer
/// address, and after authentication the verified claims in the extensions.
pub type RateCheck = Arc<dyn Fn(&Request<axum::body::Body>) -> Option<Duration> + Send + Sync>;

/// Layer that refuses calls a [`RateCheck`] says are over the limit; without one it passes every
/// call through.
#[derive(Clone, Default)]
pub struct RateLimitLayer {
    check: Option<RateCheck>,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer").field("enabled", &self.check.is_some()).finish()
    }
}

impl RateLimitLayer {
    /// A layer asking `check` about every call (but those of the health and reflection services).
    pub fn new(check: RateCheck) -> Self {
        Self { check: Some(check) }
    }

    /// A layer that limits nothing.
    pub fn off() -> Self {
        Self { check: None }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimit { inner, check: self.check.clone() }
    }
}

/// Service of [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    check: Option<RateCheck>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit").field("inner", &self.inner).field("enabled", &self.check.is_some()).finish()
    }
}

/// The status of a refused call: `RESOURCE_EXHAUSTED` with the wait in the message (whole
/// seconds, rounded up) and in a `google.rpc.RetryInfo` detail, beside the `ErrorInfo` (reason
/// `too_many_requests`) and `RequestInfo` details every framework error carries.
pub fn rate_limited(wait: Duration, request_id: Option<&str>) -> Status {
    let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    let message = format!("Rate limit exceeded; retry in {secs} second{}.", if secs == 1 { "" } else { "s" });
    let err = Error::new(ErrorKind::TooManyRequests, message);
    let mut details = error_details(&err, request_id);
    details.set_retry_info(Some(wait));
    Status::with_error_details(code_for(err.kind()), err.message(), details)
}

pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        Calling { #[pin] fut: F },
        Refused { response: Option<R> },
    }
}

pin_project! {
    /// Response future of [`RateLimit`]: the service's, or the refusal.
    pub struct RateLimitFuture<F, R> {
        #[pin]
        state: State<F, R>,
    }
}

impl<F, R, E> Future for RateLimitFuture<F, R>
where
    F: Future<Output = Result<R, E>>,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Calling { fut } => fut.poll(cx),
            // Polled again after completion (a contract violation): stay pending.
            StateProj::Refused { response } => response.take().map_or(Poll::Pending, |r| Poll::Ready(Ok(r))),
        }
    }
}

impl<S, ResB> Service<Request<axum::body::Body>> for RateLimit<S>
where
    S: Service<Request<axum::body::Body>, Response = Response<ResB>>,
    ResB: Default,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = RateLimitFuture<S::Future, Response<ResB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<axum::body::Body>) -> Self::Future {
        if let Some(check) = &self.check
            && !EXEMPT_PREFIXES.iter().any(|p| req.uri().path().starts_with(p))
            && let Some(wait) = check(&req)
        {
            let request_id = req.extensions().get::<RequestId>().map(RequestId::as_str);
            tracing::debug!(path = %req.uri().path(), wait_ms = wait.as_millis() as u64, "call over the rate limit");
            let response = Some(rate_limited(wait, request_id).into_http());
            return RateLimitFuture { state: State::Refused { response } };
        }
        RateLimitFuture { state: State::Calling { fut: self.inner.call(req) } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_retry_info_and_the_request_id() {
        let status = rate_limited(Duration::from_millis(1500), Some("req-1"));
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status.message(), "Rate limit exceeded; retry in 2 seconds.");
        let details = status.get_error_details();
        assert_eq!(details.error_info().map(|e| e.reason.as_str()), Some("too_many_requests"));
        assert_eq!(details.retry_info().and_then(|r| r.retry_delay), Some(Duration::from_millis(1500)));
        assert_eq!(details.request_info().map(|r| r.request_id.as_str()), Some("req-1"));

        let status = rate_limited(Duration::from_millis(10), None);
        assert_eq!(status.message(), "Rate limit exceeded; retry in 1 second.");
        assert!(status.get_error_details().request_info().is_none());
    }
}

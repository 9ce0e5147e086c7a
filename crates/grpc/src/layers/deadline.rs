//! Deadlines: the client's `grpc-timeout` and the configured `grpc.timeout`, whichever is
//! shorter, bound the whole call. A call still waiting for its response headers when the deadline
//! passes gets a trailers-only `DEADLINE_EXCEEDED` response (the handler is dropped); a streaming
//! response still running then is ended with `DEADLINE_EXCEEDED` trailers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tonic::Status;
use tower::{Layer, Service};

/// The metadata key of client deadlines.
pub const GRPC_TIMEOUT_HEADER: &str = "grpc-timeout";

/// Parses a `grpc-timeout` value (`<up to 8 digits><unit>`, units `H M S m u n`).
///
/// ```
/// use std::time::Duration;
/// use microframework_grpc::layers::parse_grpc_timeout;
/// assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
/// assert_eq!(parse_grpc_timeout("123456789S"), None);
/// assert_eq!(parse_grpc_timeout("soon"), None);
/// ```
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = (value.get(..split)?, value.get(split..)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn client_timeout(headers: &HeaderMap) -> Option<Duration> {
    headers.get(GRPC_TIMEOUT_HEADER).and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout)
}

/// The trailers that end a call whose deadline passed.
fn deadline_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert(Status::GRPC_STATUS, HeaderValue::from(tonic::Code::DeadlineExceeded as i32));
    trailers.insert(Status::GRPC_MESSAGE, HeaderValue::from_static("Deadline%20exceeded"));
    trailers
}

/// Layer that enforces deadlines.
#[derive(Clone, Debug)]
pub struct DeadlineLayer {
    server_timeout: Option<Duration>,
}

impl DeadlineLayer {
    /// Deadlines from `grpc-timeout`, capped by `server_timeout` when set.
    pub fn new(server_timeout: Option<Duration>) -> Self {
        Self { server_timeout }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Deadline { inner, server_timeout: self.server_timeout }
    }
}

/// Service of [`DeadlineLayer`].
#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
    server_timeout: Option<Duration>,
}

impl<S, B, ResB> Service<Request<B>> for Deadline<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    ResB: Body + Default,
{
    type Response = Response<DeadlineBody<ResB>>;
    type Error = S::Error;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let timeout = match (client_timeout(req.headers()), self.server_timeout) {
            (Some(c), Some(s)) => Some(c.min(s)),
            (c, s) => c.or(s),
        };
        // A deadline too far away to represent is no deadline.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        DeadlineFuture { inner: self.inner.call(req), sleep: deadline.map(tokio::time::sleep_until), deadline }
    }
}

pin_project! {
    /// Response future of [`Deadline`].
    pub struct DeadlineFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
        deadline: Option<Instant>,
    }
}

impl<F, ResB, E> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: Body + Default,
{
    type Output = Result<Response<DeadlineBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            let deadline = *this.deadline;
            return Poll::Ready(result.map(|res| {
                // No need to watch the body of a trailers-only response.
                let deadline = deadline.filter(|_| !res.body().is_end_stream());
                res.map(|body| DeadlineBody::new(body, deadline))
            }));
        }
        if let Some(sleep) = this.sleep.as_pin_mut() {
            std::task::ready!(sleep.poll(cx));
            tracing::debug!("deadline exceeded before the response");
            let res = Status::deadline_exceeded("Deadline exceeded").into_http::<ResB>();
            return Poll::Ready(Ok(res.map(|body| DeadlineBody::new(body, None))));
        }
        Poll::Pending
    }
}

pin_project! {
    /// Response body of [`Deadline`]: ends a streaming response with `DEADLINE_EXCEEDED` trailers
    /// when the deadline passes.
    pub struct DeadlineBody<B> {
        #[pin]
        inner: B,
        #[pin]
        sleep: Option<Sleep>,
        expired: bool,
    }
}

impl<B> DeadlineBody<B> {
    fn new(inner: B, deadline: Option<Instant>) -> Self {
        Self { inner, sleep: deadline.map(tokio::time::sleep_until), expired: false }
    }
}

impl<B: Default> Default for DeadlineBody<B> {
    fn default() -> Self {
        Self::new(B::default(), None)
    }
}

impl<B: Body> Body for DeadlineBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if let Some(sleep) = this.sleep.as_pin_mut() {
            std::task::ready!(sleep.poll(cx));
            *this.expired = true;
            tracing::debug!("deadline exceeded while streaming the response");
            return Poll::Ready(Some(Ok(Frame::trailers(deadline_trailers()))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.expired { SizeHint::with_exact(0) } else { self.inner.size_hint() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("10u"), Some(Duration::from_micros(10)));
        assert_eq!(parse_grpc_timeout("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "S", "1", "1x", "-1S", "1.5S", "é", "1é"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }
}

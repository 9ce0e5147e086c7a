//! Per-call observability: a trace span carrying the service, method and request id (so every
//! log line of the handler has them), the gRPC server metrics (see [`crate::metrics`]) and an
//! `error` log line for calls that end with `UNKNOWN`, `INTERNAL` or `DATA_LOSS`.
//!
//! The status code is read from the `grpc-status` header of trailers-only responses (errors
//! returned before any message), otherwise from the `grpc-status` trailer when the response body
//! ends, which for streaming calls is when the stream ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Code;
use tower::{Layer, Service};
use tracing::Span;

use microframework_telemetry::request_fields::RequestFields;

use crate::methods::{MethodTable, Series};
use crate::request_id::RequestId;
use crate::status::code_name;

/// Layer for per-call spans, metrics and error logs.
#[derive(Clone, Debug)]
pub struct ObserveLayer {
    table: Arc<MethodTable>,
}

impl ObserveLayer {
    pub(crate) fn new(table: Arc<MethodTable>) -> Self {
        Self { table }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner, table: self.table.clone() }
    }
}

/// Service of [`ObserveLayer`].
#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
    table: Arc<MethodTable>,
}

impl<S, B, ResB> Service<Request<B>> for Observe<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    ResB: Body,
{
    type Response = Response<ObserveBody<ResB>>;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let start = Instant::now();
        let idx = self.table.resolve(req.uri().path());
        let series = &self.table.series[idx];
        series.started().increment(1);
        let span = call_span(series, req.extensions().get::<RequestId>());
        let inner = {
            let _enter = span.enter();
            self.inner.call(req)
        };
        ObserveFuture {
            inner,
            call: Some(Call { table: self.table.clone(), idx, start, span, header_code: None, done: false }),
        }
    }
}

/// The call's span. Its fields are declared empty and, under the JSON logger, kept as values that
/// are written only into the lines logged (see `microframework_telemetry::request_fields`);
/// under any other subscriber they are recorded.
fn call_span(series: &Series, request_id: Option<&RequestId>) -> Span {
    use tracing::field::Empty;
    let span = tracing::info_span!("grpc", service = Empty, method = Empty, request_id = Empty, code = Empty);
    if span.is_disabled() {
        return span;
    }
    RequestFields::Grpc {
        service: series.service.clone(),
        method: series.method.clone(),
        request_id: request_id.map(|id| id.0.clone()),
    }
    .attach_to(&span);
    span
}

/// One call being observed; records its outcome once.
struct Call {
    table: Arc<MethodTable>,
    idx: usize,
    start: Instant,
    span: Span,
    header_code: Option<Code>,
    done: bool,
}

impl Call {
    fn finish(&mut self, code: Code, message: Option<&HeaderValue>) {
        if self.done {
            return;
        }
        self.done = true;
        let elapsed = self.start.elapsed();
        let series = &self.table.series[self.idx];
        series.handled(code).increment(1);
        series.seconds().record(elapsed.as_secs_f64());
        let _enter = self.span.enter();
        let name = code_name(code);
        self.span.record("code", name);
        let latency_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
        if matches!(code, Code::Unknown | Code::Internal | Code::DataLoss) {
            let message = message.map(|m| percent_decode(m.as_bytes())).unwrap_or_default();
            tracing::error!(code = name, latency_ms, message = %message, "gRPC call failed");
        } else {
            tracing::debug!(code = name, latency_ms, "gRPC call completed");
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // The response (or its body) was dropped before it ended: the client went away.
        let code = self.header_code.unwrap_or(Code::Cancelled);
        self.finish(code, None);
    }
}

/// The code of the `grpc-status` entry of `headers` (response headers or trailers).
pub(crate) fn grpc_status(headers: &HeaderMap) -> Option<Code> {
    headers.get(tonic::Status::GRPC_STATUS).map(|v| Code::from_bytes(v.as_bytes()))
}

/// The code of a response without `grpc-status`, from its HTTP status, as gRPC clients infer it.
fn code_from_http(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502..=504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// Decodes a percent-encoded `grpc-message`, replacing invalid UTF-8.
fn percent_decode(bytes: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) =
                (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pin_project! {
    /// Response future of [`Observe`].
    pub struct ObserveFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, ResB, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: Body,
{
    type Output = Result<Response<ObserveBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let _enter = this.call.as_ref().map(|c| c.span.enter());
            this.inner.poll(cx)
        };
        let result = std::task::ready!(polled);
        let mut call = this.call.take();
        let res = match result {
            Ok(res) => res,
            Err(e) => {
                if let Some(call) = &mut call {
                    call.finish(Code::Unknown, None);
                }
                return Poll::Ready(Err(e));
            }
        };
        if let Some(call) = &mut call {
            call.header_code = grpc_status(res.headers());
            if res.body().is_end_stream() {
                // Trailers-only (or empty) response: the body is never polled.
                let code = call.header_code.unwrap_or_else(|| code_from_http(res.status()));
                call.finish(code, res.headers().get(tonic::Status::GRPC_MESSAGE));
            }
        }
        let fallback = code_from_http(res.status());
        let (parts, body) = res.into_parts();
        Poll::Ready(Ok(Response::from_parts(parts, ObserveBody { inner: body, call, fallback })))
    }
}

pin_project! {
    /// Response body of [`Observe`]: records the call when the body ends.
    pub struct ObserveBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
        fallback: Code,
    }
}

impl<B: Body> Body for ObserveBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = {
            let _enter = this.call.as_ref().map(|c| c.span.enter());
            this.inner.poll_frame(cx)
        };
        let frame = std::task::ready!(polled);
        if let Some(call) = this.call.as_mut() {
            match &frame {
                Some(Ok(f)) => {
                    if let Some(trailers) = f.trailers_ref() {
                        let code = grpc_status(trailers).unwrap_or(Code::Unknown);
                        call.finish(code, trailers.get(tonic::Status::GRPC_MESSAGE));
                    }
                }
                Some(Err(_)) => call.finish(Code::Internal, None),
                None => {
                    let code = call.header_code.unwrap_or(*this.fallback);
                    call.finish(code, None);
                }
            }
            if call.done {
                *this.call = None;
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_grpc_messages() {
        assert_eq!(percent_decode(b"no%20such%20user"), "no such user");
        assert_eq!(percent_decode(b"caf%C3%A9 50%"), "café 50%");
        assert_eq!(percent_decode(b"%zz%4"), "%zz%4");
    }

    #[test]
    fn infers_codes_from_http_statuses() {
        assert_eq!(code_from_http(StatusCode::NOT_FOUND), Code::Unimplemented);
        assert_eq!(code_from_http(StatusCode::SERVICE_UNAVAILABLE), Code::Unavailable);
        assert_eq!(code_from_http(StatusCode::OK), Code::Unknown);
    }
}

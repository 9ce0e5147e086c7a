//! Turns every error response into RFC 7807 problem details.
//!
//! Responses produced by other layers or by axum itself (404, 405, 413, timeouts, extractor
//! rejections in `text/plain`, bare status codes returned by handlers) are rewritten as
//! `application/problem+json`, keeping their status and headers (`Allow`, `Retry-After`,
//! `WWW-Authenticate`). Problem responses gain the request id and path. JSON error bodies a
//! handler wrote itself are left alone.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, Uri, header};
use http_body_util::{BodyExt, Limited};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use microframework_core::{ErrorKind, ProblemDetails};

use super::request_id::RequestId;
use super::timeout::RequestDeadline;
use crate::error::ProblemMarker;

/// Layer that normalises error responses to problem details.
///
/// An error body is read to describe it only until the request's deadline (set by the timeout
/// layer inside), so that an error response whose body never ends cannot hold the request past
/// it; without a timeout layer, for at most [`UNBOUNDED_READ`].
#[derive(Clone, Debug, Default)]
pub struct ProblemLayer {
    body_limit: Option<u64>,
}

impl ProblemLayer {
    /// `body_limit` makes the 413 message precise.
    pub fn new(body_limit: Option<u64>) -> Self {
        Self { body_limit }
    }
}

/// How long an error body is read when the request has no deadline.
pub const UNBOUNDED_READ: Duration = Duration::from_secs(30);

impl<S> Layer<S> for ProblemLayer {
    type Service = Problem<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Problem { inner, cfg: self.clone() }
    }
}

/// Service of [`ProblemLayer`].
#[derive(Clone, Debug)]
pub struct Problem<S> {
    inner: S,
    cfg: ProblemLayer,
}

/// What the problem details of an error response need from its request.
pub(crate) struct ReqInfo {
    method: Method,
    uri: Uri,
    request_id: Option<HeaderValue>,
    matched: bool,
    cfg: ProblemLayer,
}

impl ReqInfo {
    /// Taken before the request is handed on (after the request id is assigned).
    pub(crate) fn new<B>(req: &Request<B>, cfg: &ProblemLayer) -> Self {
        Self {
            method: req.method().clone(),
            uri: req.uri().clone(),
            request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
            matched: req.extensions().get::<axum::extract::MatchedPath>().is_some(),
            cfg: cfg.clone(),
        }
    }
}

/// A response whose body has to be read before it can be described.
pub(crate) type Collecting = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// What [`finish`] made of a response.
pub(crate) enum Finished {
    /// The response as it goes out.
    Ready(Response<Body>),
    /// An error response whose body is read first.
    Collect(Collecting),
}

/// Leaves a success (or a JSON error body the handler wrote itself) alone and turns any other
/// error response into problem details.
pub(crate) fn finish(res: Response<Body>, info: ReqInfo) -> Finished {
    let status = res.status().as_u16();
    if status < 400 {
        return Finished::Ready(res);
    }
    if let Some(ProblemMarker(problem)) = res.extensions().get::<ProblemMarker>().cloned() {
        let (parts, _) = res.into_parts();
        return Finished::Ready(render(parts, enrich(problem, &info)));
    }
    let ct = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let is_problem = ct.starts_with(ProblemDetails::CONTENT_TYPE);
    if !is_problem && ct.starts_with("application/") && (ct.contains("json") || ct.contains("grpc")) {
        // A JSON error body the handler wrote itself.
        return Finished::Ready(res);
    }
    let (parts, body) = res.into_parts();
    let until = parts.extensions.get::<RequestDeadline>().map(|d| d.0);
    Finished::Collect(Box::pin(async move {
        let until = until.unwrap_or_else(|| tokio::time::Instant::now() + UNBOUNDED_READ);
        let read = tokio::time::timeout_at(until, Limited::new(body, 16 * 1024).collect());
        let bytes = match read.await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(_)) | Err(_) => Bytes::new(),
        };
        // Problem details from elsewhere (an extractor's rejection) gain the request id and
        // path; anything else is described from status and text.
        let problem = match is_problem.then(|| serde_json::from_slice::<ProblemDetails>(&bytes)) {
            Some(Ok(problem)) => problem,
            _ => describe(status, String::from_utf8_lossy(&bytes).trim(), &info),
        };
        render(parts, enrich(problem, &info))
    }))
}

impl<S, B> Service<Request<B>> for Problem<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ProblemFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let info = ReqInfo::new(&req, &self.cfg);
        ProblemFuture { state: State::Inner { fut: self.inner.call(req), info: Some(info) } }
    }
}

pin_project! {
    /// Response future of [`Problem`].
    pub struct ProblemFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] fut: F, info: Option<ReqInfo> },
        Collecting { fut: Collecting },
    }
}

impl<F, E> Future for ProblemFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { fut, info } => {
                    let res = std::task::ready!(fut.poll(cx))?;
                    let Some(info) = info.take() else { return Poll::Ready(Ok(res)) };
                    match finish(res, info) {
                        Finished::Ready(res) => return Poll::Ready(Ok(res)),
                        Finished::Collect(fut) => this.state.set(State::Collecting { fut }),
                    }
                }
                StateProj::Collecting { fut } => {
                    let res = std::task::ready!(fut.as_mut().poll(cx));
                    return Poll::Ready(Ok(res));
                }
            }
        }
    }
}

fn enrich(mut problem: ProblemDetails, info: &ReqInfo) -> ProblemDetails {
    if problem.instance.is_none() {
        problem.instance = Some(info.uri.path().to_owned());
    }
    if problem.request_id.is_none() {
        problem.request_id = info.request_id.as_ref().and_then(|v| v.to_str().ok()).map(str::to_owned);
    }
    problem
}

fn describe(status: u16, text: &str, info: &ReqInfo) -> ProblemDetails {
    let kind = ErrorKind::from_http_status(status);
    let detail = match status {
        404 if text.is_empty() && !info.matched => format!("No route matches `{} {}`.", info.method, info.uri.path()),
        405 => format!("Method `{}` is not allowed on `{}`.", info.method, info.uri.path()),
        413 => match info.cfg.body_limit {
            Some(limit) => format!("The request body exceeds the limit of {limit} bytes."),
            None => "The request body is too large.".to_owned(),
        },
        _ if !text.is_empty() => text.to_owned(),
        _ => kind.title().to_owned(),
    };
    ProblemDetails::with_status(status, kind, detail)
}

fn render(mut parts: http::response::Parts, problem: ProblemDetails) -> Response<Body> {
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ProblemDetails::CONTENT_TYPE));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.extensions.remove::<ProblemMarker>();
    Response::from_parts(parts, Body::from(problem.to_json()))
}

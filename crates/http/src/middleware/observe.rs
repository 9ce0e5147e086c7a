//! Per-request observability: a trace span carrying the request id (so every log line of the
//! request has it), RED metrics per route template, and an optional access log.
//!
//! Metric labels are bounded: `route` is the matched route template (`/users/{id}`) or the
//! constant `unmatched`, `method` is a standard method or `OTHER`, `status` is the code.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use http::{Method, Request, Response};
use metrics::{Counter, Gauge, Histogram};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Span;

use microframework_telemetry::metrics::names;
use microframework_telemetry::request_fields::RequestFields;
use microframework_telemetry::{TRACEPARENT, TraceContext};

use super::request_id::RequestId;

/// Route label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Layer for per-request spans, metrics and access logs.
#[derive(Clone, Debug)]
pub struct ObserveLayer {
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    trace: bool,
    metrics: bool,
    access_log: bool,
    cache: MetricsCache,
    in_flight: Gauge,
    quiet: Vec<String>,
}

impl ObserveLayer {
    /// Spans when `trace`, metrics when `metrics`, one info line per request when `access_log`.
    /// Failures of `quiet` paths (health probes answering 503) are logged at debug only.
    pub fn new(trace: bool, metrics: bool, access_log: bool, quiet: Vec<String>) -> Self {
        Self {
            state: Arc::new(State {
                trace,
                metrics,
                access_log,
                cache: MetricsCache::default(),
                in_flight: metrics::gauge!(names::HTTP_IN_FLIGHT),
                quiet,
            }),
        }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner, state: self.state.clone() }
    }
}

/// Service of [`ObserveLayer`].
#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
    state: Arc<State>,
}

fn method_index(m: &Method) -> (u8, &'static str) {
    match *m {
        Method::GET => (0, "GET"),
        Method::POST => (1, "POST"),
        Method::PUT => (2, "PUT"),
        Method::PATCH => (3, "PATCH"),
        Method::DELETE => (4, "DELETE"),
        Method::HEAD => (5, "HEAD"),
        Method::OPTIONS => (6, "OPTIONS"),
        Method::TRACE => (7, "TRACE"),
        Method::CONNECT => (8, "CONNECT"),
        _ => (9, "OTHER"),
    }
}

/// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`).
pub fn trace_id_from_traceparent(value: &str) -> Option<&str> {
    TraceContext::parse(value).map(|_| &value[3..35])
}

impl<S, B, ResB> Service<Request<B>> for Observe<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let obs = self.state.begin(&req);
        let inner = {
            let _enter = obs.span.enter();
            self.inner.call(req)
        };
        ObserveFuture { inner, obs }
    }
}

impl ObserveLayer {
    /// Starts observing `req`: its span (entered while the request is handled), its clock and
    /// labels, the in-flight gauge. The default stack's fused layer calls this directly.
    pub(crate) fn begin<B>(&self, req: &Request<B>) -> Observation {
        self.state.begin(req)
    }
}

impl State {
    fn begin<B>(self: &Arc<Self>, req: &Request<B>) -> Observation {
        let start = Instant::now();
        let (method_idx, method) = method_index(req.method());
        let route = match req.extensions().get::<MatchedPath>() {
            Some(matched) => {
                self.cache.route(matched.as_str(), || crate::config::path_matches(&self.quiet, matched.as_str()))
            }
            None => self.cache.route(UNMATCHED_ROUTE, || false),
        };
        let span = if self.trace { self.span(req, method, &route.name) } else { Span::none() };
        let guard = if self.metrics {
            self.in_flight.increment(1.0);
            Some(InFlight(self.clone()))
        } else {
            None
        };
        Observation { span, start, method_idx, method, route, state: self.clone(), _guard: guard }
    }

    /// The request's span. Its fields are declared empty and, under the JSON logger, kept as
    /// values that are written only into the lines logged (see
    /// `microframework_telemetry::request_fields`); under any other subscriber they are recorded.
    fn span<B>(&self, req: &Request<B>, method: &'static str, route: &Arc<str>) -> Span {
        use tracing::field::Empty;
        let span = tracing::info_span!(
            "request",
            method = Empty,
            route = Empty,
            path = Empty,
            request_id = Empty,
            trace_id = Empty,
        );
        if span.is_disabled() {
            return span;
        }
        RequestFields::Http {
            method,
            route: route.clone(),
            uri: req.uri().clone(),
            request_id: req.extensions().get::<RequestId>().map(|id| id.0.clone()),
        }
        .attach_to(&span);
        // The request's trace context, for the log lines and for messages published while it
        // is handled (microframework_telemetry::trace_context).
        if let Some(cx) = req.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(TraceContext::parse) {
            cx.attach_to(&span);
        }
        span
    }
}

struct InFlight(Arc<State>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.decrement(1.0);
    }
}

/// One request being observed: dropping it closes the span and lowers the in-flight gauge.
pub(crate) struct Observation {
    span: Span,
    start: Instant,
    method_idx: u8,
    method: &'static str,
    route: Arc<RouteEntry>,
    state: Arc<State>,
    _guard: Option<InFlight>,
}

impl Observation {
    /// The request's span (disabled when tracing is off).
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Records the response: RED metrics, and a log line for failures (or every request with the
    /// access log). Call it inside the span.
    pub(crate) fn end<ResB>(&self, res: &Response<ResB>) {
        let elapsed = self.start.elapsed();
        let status = res.status().as_u16();
        if self.state.metrics {
            self.route.record(self.method_idx, self.method, status, elapsed.as_secs_f64());
        }
        let latency_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
        let quiet = self.route.quiet;
        if status == 503 && !quiet {
            // Overload, draining or a dependency outage: expected, not a bug.
            tracing::warn!(status, latency_ms, "request refused: service unavailable");
        } else if status >= 500 && !quiet {
            tracing::error!(status, latency_ms, "request failed");
        } else if self.state.access_log {
            tracing::info!(status, latency_ms, "request completed");
        }
    }
}

pin_project! {
    /// Response future of [`Observe`].
    pub struct ObserveFuture<F> {
        #[pin]
        inner: F,
        obs: Observation,
    }
}

impl<F, ResB, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _enter = this.obs.span.enter();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Ok(res) = &result {
            this.obs.end(res);
        }
        Poll::Ready(result)
    }
}

#[derive(Debug)]
struct Series {
    method: u8,
    status: u16,
    requests: Counter,
    errors: Option<Counter>,
    duration: Histogram,
}

/// Per route: its label and the metric handles per (method, status), so that the hot path
/// does no allocation and looks the route up once.
#[derive(Debug, Default)]
struct MetricsCache {
    routes: RwLock<HashMap<Box<str>, Arc<RouteEntry>>>,
}

/// A route template (or `unmatched`) and its series. The number of entries is bounded by the
/// routes the service has.
#[derive(Debug)]
struct RouteEntry {
    name: Arc<str>,
    /// Whether its failures are logged at debug only (a matched route among the quiet paths).
    quiet: bool,
    series: RwLock<Vec<Series>>,
}

impl MetricsCache {
    /// The entry of `route`; `quiet` is asked once, when the entry is made.
    fn route(&self, route: &str, quiet: impl FnOnce() -> bool) -> Arc<RouteEntry> {
        if let Some(entry) = self.routes.read().unwrap_or_else(|p| p.into_inner()).get(route) {
            return entry.clone();
        }
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        routes
            .entry(route.into())
            .or_insert_with(|| Arc::new(RouteEntry { name: route.into(), quiet: quiet(), series: RwLock::default() }))
            .clone()
    }
}

impl RouteEntry {
    fn record(&self, method_idx: u8, method: &'static str, status: u16, secs: f64) {
        {
            let series = self.series.read().unwrap_or_else(|p| p.into_inner());
            if let Some(series) = series.iter().find(|s| s.method == method_idx && s.status == status) {
                series.record(secs);
                return;
            }
        }
        let status_label = status.to_string();
        let labels = [("method", method.to_owned()), ("route", self.name.to_string()), ("status", status_label)];
        let series = Series {
            method: method_idx,
            status,
            requests: metrics::counter!(names::HTTP_REQUESTS, &labels),
            errors: (status >= 500).then(|| metrics::counter!(names::HTTP_ERRORS, &labels)),
            duration: metrics::histogram!(names::HTTP_DURATION, &labels),
        };
        series.record(secs);
        let mut list = self.series.write().unwrap_or_else(|p| p.into_inner());
        if !list.iter().any(|s| s.method == method_idx && s.status == status) {
            list.push(series);
        }
    }
}

impl Series {
    fn record(&self, secs: f64) {
        self.requests.increment(1);
        if let Some(e) = &self.errors {
            e.increment(1);
        }
        self.duration.record(secs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_is_decided_once_per_route_and_never_for_unmatched_requests() {
        let layer = ObserveLayer::new(false, false, false, vec!["*".into()]);
        let obs = layer.begin(&Request::new(()));
        assert_eq!(&*obs.route.name, UNMATCHED_ROUTE);
        assert!(!obs.route.quiet, "a pattern matching every path still leaves unmatched requests loud");
        let cache = MetricsCache::default();
        assert!(cache.route("/health/ready", || true).quiet);
        assert!(cache.route("/health/ready", || unreachable!("asked when the entry is made only")).quiet);
        assert!(!cache.route("/users", || false).quiet);
    }

    #[test]
    fn parses_traceparent() {
        assert_eq!(
            trace_id_from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id_from_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id_from_traceparent("garbage"), None);
        assert_eq!(trace_id_from_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"), None);
    }
}

//! Prometheus metrics: the registry behind `/metrics`, process and runtime metrics, and the
//! API for your own metrics.
//!
//! Record business metrics with the re-exported macros; they appear on `/metrics`:
//!
//! ```
//! use microframework_telemetry::metrics::{counter, histogram};
//! counter!("orders_created_total", "channel" => "web").increment(1);
//! histogram!("order_value_euros").record(42.0);
//! ```
//!
//! Keep label values bounded (no user ids, no raw paths): every distinct value is a new series.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};

use microframework_core::{Validate, Validation};

use crate::TelemetryError;

pub use ::metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

/// The `metrics` configuration section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve metrics (default `true`).
    pub enabled: bool,
    /// Path of the Prometheus endpoint (default `/metrics`).
    pub path: String,
    /// Histogram buckets for request latency, in seconds.
    pub latency_buckets: Vec<f64>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/metrics".to_owned(),
            latency_buckets: vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        }
    }
}

impl Validate for MetricsConfig {
    fn validate(&self, v: &mut Validation) {
        v.check(self.path.starts_with('/'), "path", "a path starting with `/`");
        v.check(
            !self.latency_buckets.is_empty() && self.latency_buckets.windows(2).all(|w| w[0] < w[1]),
            "latency_buckets",
            "a non-empty, strictly increasing list of seconds",
        );
    }
}

/// Names of the HTTP metrics recorded by the default middleware.
pub mod names {
    /// Counter: requests by `method`, `route` and `status`.
    pub const HTTP_REQUESTS: &str = "http_requests_total";
    /// Counter: requests answered with a 5xx status, by `method`, `route` and `status`.
    pub const HTTP_ERRORS: &str = "http_requests_errors_total";
    /// Histogram: request latency in seconds by `method`, `route` and `status`.
    pub const HTTP_DURATION: &str = "http_request_duration_seconds";
    /// Gauge: requests in flight.
    pub const HTTP_IN_FLIGHT: &str = "http_requests_in_flight";
    /// Histogram: gRPC call latency in seconds (recorded by microframework-grpc).
    pub const GRPC_DURATION: &str = "grpc_server_handling_seconds";
    /// Histogram: GraphQL operation latency in seconds (recorded by microframework-graphql).
    pub const GRAPHQL_DURATION: &str = "graphql_operation_duration_seconds";
    /// Counter: messages published, by `topic` and `outcome` (`ok`, `error`; microframework-messaging).
    pub const MESSAGING_PUBLISHED: &str = "messaging_published_total";
    /// Counter: deliveries handled, by `topic`, `group` and `outcome` (`ack`, `retry`,
    /// `dead_letter`, `skipped`).
    pub const MESSAGING_CONSUMED: &str = "messaging_consumed_total";
    /// Histogram: handler latency in seconds, by `topic` and `group`.
    pub const MESSAGING_HANDLER_DURATION: &str = "messaging_handler_duration_seconds";
    /// Gauge: deliveries being handled, by `topic` and `group`.
    pub const MESSAGING_IN_FLIGHT: &str = "messaging_in_flight";
    /// Counter: broker errors (connect, fetch, acknowledge), by `operation`.
    pub const MESSAGING_ERRORS: &str = "messaging_errors_total";
}

static HANDLE: OnceLock<Result<(PrometheusHandle, metrics_process::Collector), String>> = OnceLock::new();

/// The installed Prometheus registry. Cloning is cheap.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Installs the global recorder (once per process; later calls return the same registry).
    pub fn install(service: &str, config: &MetricsConfig) -> Result<Self, TelemetryError> {
        let installed = HANDLE.get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .add_global_label("service", service)
                .set_buckets_for_metric(Matcher::Full(names::HTTP_DURATION.to_owned()), &config.latency_buckets)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(names::GRPC_DURATION.to_owned()), &config.latency_buckets)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(names::GRAPHQL_DURATION.to_owned()), &config.latency_buckets)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(names::MESSAGING_HANDLER_DURATION.to_owned()),
                        &config.latency_buckets,
                    )
                })
                .map_err(|e| e.to_string())?;
            let handle = builder.install_recorder().map_err(|e| e.to_string())?;
            let collector = metrics_process::Collector::default();
            collector.describe();
            ::metrics::describe_counter!(names::HTTP_REQUESTS, "HTTP requests by method, route template and status.");
            ::metrics::describe_counter!(names::HTTP_ERRORS, "HTTP requests answered with a 5xx status.");
            ::metrics::describe_histogram!(names::HTTP_DURATION, ::metrics::Unit::Seconds, "HTTP request latency.");
            ::metrics::describe_gauge!(names::HTTP_IN_FLIGHT, "HTTP requests being served.");
            ::metrics::describe_gauge!("tokio_workers", "Worker threads of the async runtime.");
            ::metrics::describe_gauge!("tokio_alive_tasks", "Tasks alive in the async runtime.");
            ::metrics::describe_gauge!("tokio_global_queue_depth", "Tasks waiting in the runtime's global queue.");
            Ok((handle, collector))
        });
        match installed {
            Ok((handle, _)) => Ok(Self { handle: handle.clone() }),
            Err(e) => Err(TelemetryError::Metrics(e.clone())),
        }
    }

    /// Renders every metric in the Prometheus text format, refreshing process and runtime
    /// metrics first.
    pub fn render(&self) -> String {
        if let Some(Ok((_, collector))) = HANDLE.get() {
            collector.collect();
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let m = rt.metrics();
            ::metrics::gauge!("tokio_workers").set(m.num_workers() as f64);
            ::metrics::gauge!("tokio_alive_tasks").set(m.num_alive_tasks() as f64);
            ::metrics::gauge!("tokio_global_queue_depth").set(m.global_queue_depth() as f64);
        }
        self.handle.render()
    }

    /// Drains histogram buffers; the HTTP server calls this periodically.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

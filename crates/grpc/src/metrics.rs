//! The gRPC server metrics recorded by the interceptor stack.
//!
//! They go to the global `metrics` recorder (installed by `microframework-telemetry`'s
//! `Metrics::install`) and follow the names of the usual gRPC Prometheus instrumentation:
//!
//! | Name | Type | Labels |
//! |------|------|--------|
//! | `grpc_server_started_total` | counter | `grpc_service`, `grpc_method`, `grpc_type` |
//! | `grpc_server_handled_total` | counter | `grpc_service`, `grpc_method`, `grpc_type`, `grpc_code` |
//! | `grpc_server_handling_seconds` | histogram | `grpc_service`, `grpc_method`, `grpc_type` |
//!
//! Labels are bounded: `grpc_service` is a registered service or `unknown`; `grpc_method` is a
//! method declared for it in a registered file descriptor set, or `unknown`; `grpc_type` is
//! `unary`, `client_stream`, `server_stream`, `bidi_stream` or `unknown`; `grpc_code` is the
//! canonical code name (`OK`, `NOT_FOUND`, ...). The labels are prefixed with `grpc_` because the
//! Prometheus recorder adds a global `service` label (the service name) to every metric.
//!
//! A call is counted as handled when its response ends: for unary calls with the response, for
//! streaming calls when the stream ends. A call whose response is dropped before it ends (client
//! cancellation, connection closed) is counted with `CANCELLED`.

/// Metric names.
pub mod names {
    /// Counter: calls started.
    pub const GRPC_STARTED: &str = "grpc_server_started_total";
    /// Counter: calls completed, by status code.
    pub const GRPC_HANDLED: &str = "grpc_server_handled_total";
    /// Histogram: seconds from the start of a call to the end of its response.
    pub const GRPC_HANDLING_SECONDS: &str = "grpc_server_handling_seconds";
}

/// Describes the gRPC metrics to the installed recorder (help texts and units). Called by
/// [`GrpcBuilder::build`](crate::GrpcBuilder::build).
pub fn describe() {
    metrics::describe_counter!(names::GRPC_STARTED, "gRPC calls started on the server.");
    metrics::describe_counter!(names::GRPC_HANDLED, "gRPC calls completed on the server, by status code.");
    metrics::describe_histogram!(
        names::GRPC_HANDLING_SECONDS,
        metrics::Unit::Seconds,
        "Time from the start of a gRPC call to the end of its response."
    );
}

//! Telemetry for MicroFramework services: logging and metrics.
//!
//! - [`logging`]: `tracing` with pretty output in development, flat JSON in production, an
//!   optional rotating file, and a level that can change while the service runs.
//! - [`metrics`]: a Prometheus registry for RED metrics, process and runtime metrics, and your
//!   own metrics through the re-exported [`metrics`](::metrics) crate macros.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod json_fields;
pub mod logging;
pub mod metrics;
pub mod request_fields;

pub use json_fields::JsonSpanFields;
pub use logging::{LogFormat, LogHandle, LoggingConfig};
pub use metrics::{Metrics, MetricsConfig};

/// An error setting up telemetry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The log filter could not be parsed.
    #[error("invalid log level or filter `{filter}`: {message}")]
    InvalidFilter {
        /// The filter text.
        filter: String,
        /// Why it is invalid.
        message: String,
    },
    /// The log file could not be opened.
    #[error("cannot open log file in `{dir}`: {message}")]
    LogFile {
        /// The directory.
        dir: String,
        /// Why.
        message: String,
    },
    /// The logger has not been installed yet.
    #[error("logging is not installed")]
    NotInstalled,
    /// The metrics recorder could not be installed.
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
}

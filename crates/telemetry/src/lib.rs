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
pub mod trace_context;

pub use json_fields::JsonSpanFields;
pub use logging::{LogFormat, LogHandle, LoggingConfig};
pub use metrics::{Metrics, MetricsConfig};
pub use trace_context::{TRACEPARENT, TraceContext};

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

#[cfg(test)]
pub(crate) mod test_support {
    pub(crate) type Captured = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

    /// A writer for a test subscriber, and what it wrote.
    pub(crate) fn capture() -> (impl for<'a> tracing_subscriber::fmt::MakeWriter<'a> + 'static, Captured) {
        #[derive(Clone)]
        struct W(Captured);
        impl std::io::Write for W {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Captured::default();
        let w = W(lines.clone());
        (move || w.clone(), lines)
    }

    /// The JSON lines written.
    pub(crate) fn json_lines(captured: &Captured) -> Vec<serde_json::Value> {
        let text = String::from_utf8(captured.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

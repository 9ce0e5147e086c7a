//! # MicroFramework
//!
//! Build production microservices in Rust: one [`Service`] gives your handlers layered
//! configuration, structured logs with request ids, Prometheus metrics, health checks, graceful
//! shutdown, problem+json errors, OpenAPI docs, JWT authentication and rate limiting.
//!
//! ```no_run
//! use microframework::prelude::*;
//!
//! #[utoipa::path(get, path = "/hello", responses((status = 200, body = String)))]
//! async fn hello() -> &'static str {
//!     "Hello, world!"
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     Service::new("hello-service")
//!         .version(env!("CARGO_PKG_VERSION"))
//!         .api(|_ctx| Ok(OpenApiRouter::new().routes(routes!(hello))))
//!         .run()
//!         .await
//! }
//! ```
//!
//! ## Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `sqlite` | yes | SQL databases through sqlx with the SQLite driver (the embedded default) |
//! | `postgres` | no | the PostgreSQL driver (same component, chosen by `database.url`) |
//! | `mysql` | no | the MySQL and MariaDB driver |
//! | `data` | via the above | [`Service::database`], [`data`] |
//!
//! Each database feature compiles only its own driver: a service built with
//! `default-features = false, features = ["postgres"]` contains neither SQLite nor MySQL, and a
//! `database.url` for a driver that is not compiled in is a configuration error naming the
//! feature to enable.
//! | `grpc` | no | [`Service::grpc`]: tonic services with health, reflection, auth, metrics |
//! | `graphql` | no | [`Service::graphql`]: schema at `/graphql`, subscriptions at `/graphql/ws`, offline GraphiQL |
//! | `ws` | no | [`Service::websocket`]: rooms, broadcast, heartbeats, backpressure, close 1001 on shutdown |
//! | `messaging` | no | [`messaging`]: publish/subscribe, acks, retries, dead letters; `Service::plugin(MessagingPlugin::new())`; the in-process broker |
//! | `messaging-nats` | no | NATS JetStream as the broker (`messaging.provider: nats`) |
//! | `cache` | no | [`cache`]: get-or-load with single flight, negative caching, metrics, never failing a request; `CachePlugin`; in memory |
//! | `cache-redis` | no | Redis as the cache store (`cache.provider: redis`) |
//!
//! ## Configuration
//!
//! `configs/config.yaml` < `configs/config.<env>.yaml` < `APP_*` environment variables (nested
//! keys joined by `__`) < command-line flags (`--set key=value`, `--port`, `--env`). See
//! [`config`] and the guides under `docs/`.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod cli;
mod service;
mod shortcuts;

pub use service::{RunningService, Service, StartupError};

/// Configuration: sources, typed sections, validation and hot reload.
pub mod config {
    pub use microframework_core::config::*;
    pub use microframework_core::{ByteSize, ShutdownConfig};
    pub use microframework_http::config::*;
    pub use microframework_telemetry::logging::{FileLogConfig, LogFormat, LoggingConfig, Rotation};
    pub use microframework_telemetry::metrics::MetricsConfig;
}

/// Components, context, health and lifecycle.
pub mod core {
    pub use microframework_core::*;
}

/// HTTP: extractors, errors, middleware, OpenAPI.
pub mod http {
    pub use microframework_http::*;
}

/// Authentication: JWT claims, verification and signing.
pub mod auth {
    pub use microframework_auth::*;
}

/// Metrics: record your own counters, gauges and histograms; they appear on `/metrics`.
pub mod metrics {
    pub use microframework_telemetry::metrics::*;
}

/// SQL databases (feature `data`).
#[cfg(feature = "data")]
pub mod data {
    pub use microframework_data::*;
}

pub use microframework_http::{axum, utoipa, utoipa_axum, validator};
/// gRPC (feature `grpc`).
#[cfg(feature = "grpc")]
pub mod grpc {
    pub use microframework_grpc::*;
}

/// GraphQL (feature `graphql`).
#[cfg(feature = "graphql")]
pub mod graphql {
    pub use microframework_graphql::*;
}

/// WebSocket (feature `ws`).
#[cfg(feature = "ws")]
pub mod ws {
    pub use microframework_ws::*;
}

/// Messaging: publish/subscribe over the configured broker (feature `messaging`).
#[cfg(feature = "messaging")]
pub mod messaging {
    pub use microframework_messaging::*;
}

/// Caching over memory or Redis (feature `cache`).
#[cfg(feature = "cache")]
pub mod cache {
    pub use microframework_cache::*;
}

#[cfg(feature = "data")]
pub use sqlx;
pub use tokio;
pub use tower;
pub use tracing;

/// The names most services need.
pub mod prelude {
    pub use crate::Service;
    pub use microframework_auth::Claims;
    pub use microframework_core::{
        AppContext, BoxError, Component, Error, ErrorKind, FieldError, HealthCheck, NoConfig, Plugin, PluginContext,
    };
    pub use microframework_http::axum;
    pub use microframework_http::utoipa::{self, IntoParams, OpenApi, ToSchema};
    pub use microframework_http::utoipa_axum::router::OpenApiRouter;
    pub use microframework_http::utoipa_axum::routes;
    pub use microframework_http::validator::{self, Validate};
    pub use microframework_http::{ApiError, Json, Page, Pagination, Path, Query, RequestId, Valid};
}

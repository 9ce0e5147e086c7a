//! Core of MicroFramework.
//!
//! This crate holds what every MicroFramework service shares, independent of any protocol:
//!
//! - [`config`]: layered configuration (defaults < `configs/config.yaml` <
//!   `configs/config.<env>.yaml` < `APP_*` environment variables < command-line flags), typed
//!   sections with validation that reports every problem with its key and source, and hot reload.
//! - [`component`]: the [`Component`] trait and the start-up/shutdown ordering of components.
//! - [`plugin`]: the [`Plugin`] trait, the seam every integration plugs into.
//! - [`health`]: the [`HealthRegistry`] behind `/health/live` and `/health/ready`.
//! - [`lifecycle`]: the service state (starting, ready, draining, stopped) and shutdown settings.
//! - [`context`]: the [`AppContext`] that components and handlers share.
//! - [`error`]: the protocol-neutral [`Error`] and [`ErrorKind`], and RFC 7807 [`ProblemDetails`].
//!
//! Users normally depend on the `microframework` facade crate, which re-exports this one.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod bytesize;
pub mod component;
pub mod config;
pub mod context;
pub mod error;
pub mod features;
pub mod health;
pub mod lifecycle;
pub mod plugin;
pub mod request_id;

pub use bytesize::ByteSize;
pub use component::{Component, ComponentSet, StartError};
pub use config::{Config, ConfigError, ConfigHandle, ConfigProblem, ConfigSources, Validate, Validation};
pub use context::AppContext;
pub use error::{BoxError, Error, ErrorKind, FieldError, ProblemDetails};
pub use features::FeatureFlags;
pub use health::{CheckKind, CheckResult, CheckStatus, HealthCheck, HealthRegistry, HealthReport};
pub use lifecycle::{Lifecycle, ServiceState, ShutdownConfig};
pub use plugin::{NoConfig, Plugin, PluginContext, PluginError, PluginSet, Probe};
pub use request_id::{REQUEST_ID_HEADER, RequestId};

/// Re-exported so that components can implement [`Component`] without adding the dependency.
pub use async_trait::async_trait;

//! HTTP for MicroFramework services, on axum.
//!
//! - [`AppBuilder`] assembles a service: your routes (documented with utoipa, or plain axum
//!   routers), the framework endpoints (`/health/live`, `/health/ready`, `/health`, `/metrics`,
//!   `/openapi.json`, `/docs`) and the default middleware stack ([`middleware`]).
//! - Every error is RFC 7807 `application/problem+json`: return [`ApiError`] from handlers and
//!   use the [`Json`], [`Valid`], [`Query`] and [`Path`] extractors, whose rejections name the
//!   failing field. Errors from axum itself (404, 405, 413, ...) are converted too.
//! - [`server::serve`] runs with graceful shutdown and a drain deadline.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod app;
pub mod client_ip;
pub mod config;
mod error;
mod extract;
pub mod middleware;
pub mod openapi;
mod pagination;
pub mod parts;
mod routes;
pub mod server;
pub mod text;

pub use app::{AppBuilder, BuiltApp};
pub use config::{HttpConfig, ServerConfig};
pub use error::{ApiError, problem_response};
pub use extract::{Json, Path, Query, Valid, field_errors, parse_json, validate};
pub use middleware::RequestId;
pub use middleware::auth::require_auth;
pub use pagination::{MAX_PAGE, MAX_PER_PAGE, Page, Pagination};
pub use parts::{Http, HttpParts, Listener, Served, Serving};

pub use axum;
pub use utoipa;
pub use utoipa_axum;
pub use validator;

//! SQL databases for MicroFramework services: [sqlx] pools for SQLite, PostgreSQL and
//! MySQL/MariaDB, migrations, a readiness check, and errors that map to HTTP/gRPC statuses.
//!
//! Add a [`DatabaseComponent`] to the service; it reads the `database` section
//! ([`DatabaseConfig`]), connects, migrates and provides a [`Database`]. Handlers turn
//! [`DataError`]s into [`microframework_core::Error`]s with `?`: a missing row becomes
//! `404`, a duplicate key `409`, an outage `503`.
//!
//! ```yaml
//! database:
//!   url: postgres://app:${DB_PASSWORD}@db:5432/users   # default: sqlite://data/<service>.db?mode=rwc
//!   max_connections: 10
//!   acquire_timeout: 3s
//! ```
//!
//! ```no_run
//! use microframework_core::{AppContext, Error};
//! use microframework_data::{Database, DatabaseComponent, DataError, Migrations};
//!
//! // At start-up: register the component (the facade's service builder does this).
//! let component = DatabaseComponent::new().with_migrations(
//!     Migrations::new()
//!         .sqlite(sqlx::migrate!("tests/migrations/sqlite"))
//!         .postgres(sqlx::migrate!("tests/migrations/postgres")),
//! );
//!
//! // In a handler:
//! async fn user_email(ctx: &AppContext, id: i64) -> Result<String, Error> {
//!     let db = ctx.require::<Database>()?;
//!     let pool = db.postgres().ok_or_else(|| Error::internal("this service needs PostgreSQL"))?;
//!     let email = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
//!         .bind(id)
//!         .fetch_one(pool)
//!         .await
//!         .map_err(DataError::from)?; // RowNotFound -> 404, outage -> 503
//!     Ok(email)
//! }
//! ```
//!
//! # Features
//!
//! | Feature | Default | What it adds |
//! |---------|---------|--------------|
//! | `sqlite` | no | the SQLite driver (bundled, no system library) and [`Database::Sqlite`] |
//! | `postgres` | no | the PostgreSQL driver and [`Database::Postgres`] |
//! | `mysql` | no | the MySQL/MariaDB driver and [`Database::MySql`] |
//!
//! Enable at least one; a service compiles only the drivers it names, and a `database.url` of
//! another kind is a configuration error that names the missing feature.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("microframework-data needs at least one driver feature: sqlite, postgres or mysql");

mod component;
mod config;
mod database;
mod error;
mod migrate;
mod plugin;
mod url;

pub use component::DatabaseComponent;
pub use config::DatabaseConfig;
pub use database::Database;
pub use error::DataError;
pub use migrate::Migrations;
pub use plugin::DatabasePlugin;
pub use url::{DbKind, redact_url};

/// Re-exported so that services use the same sqlx version.
pub use sqlx;

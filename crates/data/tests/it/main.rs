//! Integration tests of microframework-data against real SQLite, PostgreSQL and MariaDB
//! servers. Each test works in its own database (see `microframework_testing::db`), dropped afterwards.
//! Without a server the tests for it are skipped, except under `CI=true` where they fail.

mod component;
mod connect;
mod queries;

use std::time::Duration;

use microframework_core::{AppContext, Config, ConfigHandle, ConfigSources};
use microframework_data::{DatabaseConfig, Migrations};

/// The migrations under `tests/migrations`, for all three kinds.
pub(crate) fn migrations() -> Migrations {
    Migrations::new()
        .sqlite(sqlx::migrate!("tests/migrations/sqlite"))
        .postgres(sqlx::migrate!("tests/migrations/postgres"))
        .mysql(sqlx::migrate!("tests/migrations/mysql"))
}

/// Defaults with `url` and short timeouts.
pub(crate) fn config(url: &str) -> DatabaseConfig {
    DatabaseConfig {
        url: Some(url.to_owned()),
        connect_timeout: Duration::from_secs(2),
        acquire_timeout: Duration::from_secs(2),
        ..DatabaseConfig::default()
    }
}

/// An application context for service `svc` with this YAML configuration.
pub(crate) fn context(yaml: &str) -> AppContext {
    AppContext::new("svc", ConfigHandle::new(ConfigSources::new(), Config::from_yaml(yaml).unwrap()))
}

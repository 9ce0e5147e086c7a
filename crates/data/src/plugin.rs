//! The [`DatabasePlugin`]: the database as a plugin of the service.

use std::time::Duration;

use microframework_core::{AppContext, BoxError, Plugin, PluginContext, Probe};

use crate::component::DatabaseComponent;
use crate::config::DatabaseConfig;
use crate::database::Database;
use crate::migrate::Migrations;
use crate::url::{default_url, redact_url};

/// The SQL database of a service, as a plugin: it owns the `database` section
/// ([`DatabaseConfig`]) and registers the [`DatabaseComponent`], which connects at start-up,
/// runs the migrations, reports readiness and provides the [`Database`](crate::Database)
/// (`ctx.require::<Database>()`).
///
/// `Service::database(migrations)` adds it; a second database needs its own name and section:
///
/// ```
/// use microframework_data::{DatabasePlugin, Migrations};
/// let analytics = DatabasePlugin::new(Migrations::new()).named("analytics").section("analytics_db");
/// ```
#[derive(Debug)]
pub struct DatabasePlugin {
    name: String,
    section: String,
    migrations: Migrations,
}

impl DatabasePlugin {
    /// The plugin `database`, reading section `database`, running `migrations` at start-up (when
    /// `database.migrate` is on).
    pub fn new(migrations: Migrations) -> Self {
        Self { name: "database".to_owned(), section: "database".to_owned(), migrations }
    }

    /// Renames the plugin, its component and readiness check (default `database`).
    pub fn named(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    /// Reads section `key` instead of `database`.
    pub fn section(mut self, key: &str) -> Self {
        key.clone_into(&mut self.section);
        self
    }
}

impl Plugin for DatabasePlugin {
    type Config = DatabaseConfig;

    fn name(&self) -> &str {
        &self.name
    }

    fn section(&self) -> Option<&str> {
        Some(&self.section)
    }

    fn build(self, _config: DatabaseConfig, cx: &mut PluginContext<'_>) -> Result<(), BoxError> {
        // The component reads the section again when it starts, so that it connects with what is
        // in effect then.
        cx.component(
            DatabaseComponent::new().with_migrations(self.migrations).config_key(&self.section).named(&self.name),
        );
        Ok(())
    }

    /// Connects with the section's settings (waiting at most 5 s for the server), pings and
    /// disconnects. Migrations do not run. A SQLite file is created if missing, as at start-up.
    fn probe(&self, config: &DatabaseConfig, app: &AppContext) -> Option<Probe> {
        let mut cfg = config.clone();
        cfg.connect_timeout = cfg.connect_timeout.min(Duration::from_secs(5));
        let default = default_url(app.name());
        let section = self.section.clone();
        Some(Box::pin(async move {
            let url = cfg.url.clone().unwrap_or_else(|| default.clone());
            let db = Database::connect_section(&cfg, &default, &section).await.map_err(|e| e.to_string())?;
            let ping = db.ping().await;
            db.close().await;
            ping.map(|()| format!("reached {}", redact_url(&url))).map_err(|e| e.to_string())
        }))
    }
}

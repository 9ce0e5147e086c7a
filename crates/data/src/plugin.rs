//! The [`DatabasePlugin`]: the database as a plugin of the service.

use microframework_core::{BoxError, Plugin, PluginContext};

use crate::component::DatabaseComponent;
use crate::config::DatabaseConfig;
use crate::migrate::Migrations;

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
}

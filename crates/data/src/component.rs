//! The [`DatabaseComponent`]: connects at start-up, migrates, reports readiness.

use std::time::Duration;

use microframework_core::{AppContext, BoxError, Component, HealthCheck, async_trait};

use crate::config::DatabaseConfig;
use crate::database::Database;
use crate::migrate::Migrations;
use crate::url::{default_url, redact_url, scrub};

/// The component that owns a service's database.
///
/// On start it reads the `database` section ([`DatabaseConfig`]), connects (by default to
/// `sqlite://data/<service-name>.db?mode=rwc`), runs the migrations if `database.migrate` is on,
/// registers the readiness check `database` (a ping within `database.health_timeout`) and
/// provides the [`Database`] to the rest of the service (`ctx.require::<Database>()`).
/// On stop it closes the pool.
///
/// ```
/// use microframework_data::{DatabaseComponent, Migrations};
/// let component = DatabaseComponent::new()
///     .with_migrations(Migrations::new().sqlite(sqlx::migrate!("tests/migrations/sqlite")));
/// ```
#[derive(Debug)]
pub struct DatabaseComponent {
    name: String,
    key: String,
    migrations: Migrations,
    db: Option<Database>,
}

impl Default for DatabaseComponent {
    fn default() -> Self {
        Self::new()
    }
}

impl DatabaseComponent {
    /// A component named `database` reading the `database` section, without migrations.
    pub fn new() -> Self {
        Self { name: "database".to_owned(), key: "database".to_owned(), migrations: Migrations::new(), db: None }
    }

    /// Sets the migrations run at start-up (when `migrate` is on). Without any, nothing is
    /// migrated; with some, but none for the configured kind of database, start-up fails.
    pub fn with_migrations(mut self, migrations: Migrations) -> Self {
        self.migrations = migrations;
        self
    }

    /// Reads the configuration from section `key` instead of `database`.
    pub fn config_key(mut self, key: &str) -> Self {
        key.clone_into(&mut self.key);
        self
    }

    /// Renames the component and its readiness check (default `database`), for a service with
    /// several databases.
    pub fn named(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    /// The database, once started.
    pub fn database(&self) -> Option<&Database> {
        self.db.as_ref()
    }
}

#[async_trait]
impl Component for DatabaseComponent {
    fn name(&self) -> &str {
        &self.name
    }

    async fn start(&mut self, ctx: &AppContext) -> Result<(), BoxError> {
        let cfg: DatabaseConfig = ctx.config().section(&self.key)?;
        let default = default_url(ctx.name());
        let url = cfg.url.clone().unwrap_or_else(|| default.clone());
        let db = Database::connect_section(&cfg, &default, &self.key).await?;
        if cfg.migrate {
            if self.migrations.is_empty() {
                tracing::debug!("no migrations were embedded; nothing to migrate");
            } else if let Err(e) = db.migrate(&self.migrations).await {
                db.close().await;
                return Err(e.into());
            }
        }

        let check_db = db.clone();
        let timeout = cfg.health_timeout;
        let check_url = url.clone();
        ctx.health().register(
            HealthCheck::readiness(self.name.clone(), move || {
                let db = check_db.clone();
                let url = check_url.clone();
                async move {
                    match tokio::time::timeout(timeout, db.ping()).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(scrub(&e.to_string(), &url)),
                        Err(_) => Err(format!("no answer from {} within {timeout:?}", db.kind())),
                    }
                }
            })
            .timeout(timeout + Duration::from_millis(500)),
        );
        ctx.provide(db.clone());
        tracing::info!(kind = %db.kind(), url = %redact_url(&url), "database connected");
        self.db = Some(db);
        Ok(())
    }

    async fn stop(&mut self, _ctx: &AppContext) -> Result<(), BoxError> {
        if let Some(db) = self.db.take() {
            db.close().await;
            tracing::debug!(kind = %db.kind(), "database pool closed");
        }
        Ok(())
    }
}

//! Migrations for each kind of database.

use std::path::Path;

use sqlx::migrate::Migrator;

use crate::error::DataError;
use crate::url::DbKind;

/// The migrations of a service, one set per kind of database it supports.
///
/// Embed them at compile time with `sqlx::migrate!` (the path is relative to the crate's
/// `Cargo.toml`):
///
/// ```
/// use microframework_data::Migrations;
/// let migrations = Migrations::new()
///     .sqlite(sqlx::migrate!("tests/migrations/sqlite"))
///     .postgres(sqlx::migrate!("tests/migrations/postgres"));
/// assert!(migrations.get(microframework_data::DbKind::MySql).is_none());
/// ```
#[derive(Debug, Default)]
pub struct Migrations {
    sqlite: Option<Migrator>,
    postgres: Option<Migrator>,
    mysql: Option<Migrator>,
}

impl Migrations {
    /// No migrations.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the SQLite migrations.
    pub fn sqlite(self, migrator: Migrator) -> Self {
        self.with(DbKind::Sqlite, migrator)
    }

    /// Sets the PostgreSQL migrations.
    pub fn postgres(self, migrator: Migrator) -> Self {
        self.with(DbKind::Postgres, migrator)
    }

    /// Sets the MySQL/MariaDB migrations.
    pub fn mysql(self, migrator: Migrator) -> Self {
        self.with(DbKind::MySql, migrator)
    }

    /// Sets the migrations for `kind`.
    pub fn with(mut self, kind: DbKind, migrator: Migrator) -> Self {
        *self.slot(kind) = Some(migrator);
        self
    }

    /// Loads the migrations for `kind` from the directory `path` at run time (files named
    /// `<version>_<description>.sql`, as for `sqlx migrate`).
    pub async fn from_dir(kind: DbKind, path: impl AsRef<Path>) -> Result<Self, DataError> {
        Self::new().with_dir(kind, path).await
    }

    /// Adds the migrations for `kind` from the directory `path`, loaded at run time.
    pub async fn with_dir(self, kind: DbKind, path: impl AsRef<Path>) -> Result<Self, DataError> {
        let migrator = Migrator::new(path.as_ref()).await.map_err(|cause| DataError::Migrate { kind, cause })?;
        Ok(self.with(kind, migrator))
    }

    /// The migrations for `kind`, if any.
    pub fn get(&self, kind: DbKind) -> Option<&Migrator> {
        match kind {
            DbKind::Sqlite => self.sqlite.as_ref(),
            DbKind::Postgres => self.postgres.as_ref(),
            DbKind::MySql => self.mysql.as_ref(),
        }
    }

    /// Whether no migrations were given for any kind.
    pub fn is_empty(&self) -> bool {
        self.sqlite.is_none() && self.postgres.is_none() && self.mysql.is_none()
    }

    fn slot(&mut self, kind: DbKind) -> &mut Option<Migrator> {
        match kind {
            DbKind::Sqlite => &mut self.sqlite,
            DbKind::Postgres => &mut self.postgres,
            DbKind::MySql => &mut self.mysql,
        }
    }
}

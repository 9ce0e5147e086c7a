//! The [`Database`] handle: a connection pool for SQLite, PostgreSQL or MySQL.

#[cfg(feature = "sqlite")]
use std::path::Path;
use std::time::{Duration, Instant};

use microframework_core::{ConfigError, ConfigProblem, Validate, Validation};
#[cfg(feature = "mysql")]
use sqlx::MySqlPool;
#[cfg(feature = "postgres")]
use sqlx::PgPool;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;
use sqlx::pool::PoolOptions;
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Pool};

use crate::config::{DatabaseConfig, check_url};
use crate::error::DataError;
use crate::migrate::Migrations;
#[cfg(feature = "sqlite")]
use crate::url::is_sqlite_memory;
use crate::url::{DbKind, redact_url, scrub};

/// How long SQLite waits for a lock held by another connection before reporting "busy".
#[cfg(feature = "sqlite")]
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool of connections to one database. Cloning is cheap (the pool is shared).
///
/// The pool tests each idle connection before handing it out and opens new ones as needed, so
/// it recovers by itself once an unavailable database is back; meanwhile queries fail after
/// [`DatabaseConfig::acquire_timeout`] with an error that maps to `Unavailable`.
///
/// Each variant exists with its Cargo feature (`sqlite`, `postgres`, `mysql`), so that a
/// service compiles only the driver it uses.
#[derive(Clone, Debug)]
pub enum Database {
    /// A SQLite pool.
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
    /// A PostgreSQL pool.
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
    /// A MySQL or MariaDB pool.
    #[cfg(feature = "mysql")]
    MySql(MySqlPool),
}

/// `$body` with `$pool` bound to the pool, whatever the database.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            #[cfg(feature = "sqlite")]
            Database::Sqlite($pool) => $body,
            #[cfg(feature = "postgres")]
            Database::Postgres($pool) => $body,
            #[cfg(feature = "mysql")]
            Database::MySql($pool) => $body,
        }
    };
}

impl Database {
    /// Connects with `cfg`, using `default_url` when `cfg.url` is unset.
    ///
    /// The first connection is attempted (and retried while the server refuses connections)
    /// for at most [`DatabaseConfig::connect_timeout`]; a failure says what went wrong and what
    /// to check, with passwords redacted. For a SQLite file the parent directory is created
    /// first, and connections use WAL journaling, a busy timeout and foreign keys.
    pub async fn connect(cfg: &DatabaseConfig, default_url: &str) -> Result<Self, DataError> {
        Self::connect_section(cfg, default_url, "database").await
    }

    /// Like [`Database::connect`], naming the configuration section `section` in messages.
    pub(crate) async fn connect_section(
        cfg: &DatabaseConfig,
        default_url: &str,
        section: &str,
    ) -> Result<Self, DataError> {
        let mut validation = Validation::new(section);
        cfg.validate(&mut validation);
        if !validation.is_ok() {
            let problems = validation
                .into_problems()
                .into_iter()
                .map(|(key, message)| ConfigProblem::new(key, "the DatabaseConfig given to Database::connect", message))
                .collect();
            return Err(DataError::Config(ConfigError::new(problems)));
        }
        let url = cfg.url.as_deref().unwrap_or(default_url);
        let target = Target { url, section, connect_timeout: cfg.connect_timeout };
        let kind = check_url(url).map_err(|reason| target.invalid(reason))?;
        match kind {
            #[cfg(feature = "sqlite")]
            DbKind::Sqlite => {
                let memory = is_sqlite_memory(url);
                let mut opts: SqliteConnectOptions =
                    url.parse().map_err(|e: sqlx::Error| target.invalid(e.to_string()))?;
                opts = opts.busy_timeout(SQLITE_BUSY_TIMEOUT).foreign_keys(true);
                if !memory {
                    opts = opts.journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Normal);
                    create_parent_dir(opts.get_filename(), section)?;
                }
                let mut pool = pool_options(cfg);
                if memory {
                    // An in-memory database lives as long as one of its connections: keep one.
                    pool = pool.min_connections(cfg.min_connections.max(1)).idle_timeout(None).max_lifetime(None);
                }
                Ok(Self::Sqlite(target.open(kind, opts, pool).await?))
            }
            #[cfg(feature = "postgres")]
            DbKind::Postgres => {
                let opts = url.parse().map_err(|e: sqlx::Error| target.invalid(e.to_string()))?;
                Ok(Self::Postgres(target.open(kind, opts, pool_options(cfg)).await?))
            }
            #[cfg(feature = "mysql")]
            DbKind::MySql => {
                let opts = url.parse().map_err(|e: sqlx::Error| target.invalid(e.to_string()))?;
                Ok(Self::MySql(target.open(kind, opts, pool_options(cfg)).await?))
            }
            #[allow(unreachable_patterns)]
            other => Err(target.invalid(crate::url::missing_driver(other))),
        }
    }

    /// The kind of database.
    pub fn kind(&self) -> DbKind {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => DbKind::Sqlite,
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => DbKind::Postgres,
            #[cfg(feature = "mysql")]
            Self::MySql(_) => DbKind::MySql,
        }
    }

    /// The SQLite pool, if this is SQLite.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(&self) -> Option<&SqlitePool> {
        #[allow(unreachable_patterns)]
        match self {
            Self::Sqlite(p) => Some(p),
            _ => None,
        }
    }

    /// The PostgreSQL pool, if this is PostgreSQL.
    #[cfg(feature = "postgres")]
    pub fn postgres(&self) -> Option<&PgPool> {
        #[allow(unreachable_patterns)]
        match self {
            Self::Postgres(p) => Some(p),
            _ => None,
        }
    }

    /// The MySQL pool, if this is MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    pub fn mysql(&self) -> Option<&MySqlPool> {
        #[allow(unreachable_patterns)]
        match self {
            Self::MySql(p) => Some(p),
            _ => None,
        }
    }

    /// Runs `SELECT 1`. Fails (see [`DataError::is_unavailable`]) when the database is down or
    /// the pool is closed.
    pub async fn ping(&self) -> Result<(), DataError> {
        with_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(drop)?);
        Ok(())
    }

    /// Applies the pending migrations for this kind of database.
    ///
    /// Fails with [`DataError::NoMigrations`] when `migrations` has none for this kind.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<(), DataError> {
        let kind = self.kind();
        let migrator = migrations.get(kind).ok_or(DataError::NoMigrations(kind))?;
        let result = with_pool!(self, p => migrator.run(p).await);
        result.map_err(|cause| DataError::Migrate { kind, cause })
    }

    /// Closes the pool: waits for connections in use to be returned and closes all of them.
    /// Later queries fail with `PoolClosed` (which maps to `Unavailable`).
    pub async fn close(&self) {
        with_pool!(self, p => p.close().await);
    }

    /// Whether [`Database::close`] was called.
    pub fn is_closed(&self) -> bool {
        with_pool!(self, p => p.is_closed())
    }
}

fn pool_options<DB: sqlx::Database>(cfg: &DatabaseConfig) -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(cfg.max_connections)
        .min_connections(cfg.min_connections)
        .acquire_timeout(cfg.acquire_timeout)
        .idle_timeout(cfg.idle_timeout)
        .max_lifetime(cfg.max_lifetime)
        // Dead connections (after a database restart) are detected and replaced on acquire.
        .test_before_acquire(true)
}

/// SQLite creates the database file but not its directory.
#[cfg(feature = "sqlite")]
fn create_parent_dir(file: &Path, section: &str) -> Result<(), DataError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::create_dir_all(dir)
            .map_err(|cause| DataError::CreateDir { key: format!("{section}.url"), path: dir.to_owned(), cause }),
        _ => Ok(()),
    }
}

/// What we connect to, for opening pools and describing failures.
struct Target<'a> {
    url: &'a str,
    section: &'a str,
    connect_timeout: Duration,
}

impl Target<'_> {
    fn invalid(&self, reason: String) -> DataError {
        DataError::InvalidUrl { key: format!("{}.url", self.section), reason: scrub(&reason, self.url) }
    }

    /// Tries one connection (retrying while refused, within the connect timeout) so that a
    /// failure can be described precisely, then opens the pool.
    async fn open<DB: sqlx::Database>(
        &self,
        kind: DbKind,
        opts: <DB::Connection as Connection>::Options,
        pool: PoolOptions<DB>,
    ) -> Result<Pool<DB>, DataError> {
        let deadline = Instant::now() + self.connect_timeout;
        let mut backoff = Duration::from_millis(50);
        let mut last: Option<sqlx::Error> = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.failure(kind, last));
            }
            match tokio::time::timeout(remaining, opts.connect()).await {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                    break;
                }
                Ok(Err(e)) if transient(&e) => {
                    last = Some(e);
                    tokio::time::sleep(backoff.min(remaining)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Ok(Err(e)) => return Err(self.failure(kind, Some(e))),
                Err(_) => return Err(self.failure(kind, last)),
            }
        }
        pool.connect_with(opts).await.map_err(|e| self.failure(kind, Some(e)))
    }

    fn failure(&self, kind: DbKind, cause: Option<sqlx::Error>) -> DataError {
        let url_key = format!("{}.url", self.section);
        let reachable = format!("is the server running and reachable? check {url_key}");
        let (reason, hint) = match &cause {
            None | Some(sqlx::Error::PoolTimedOut) => (
                format!("no answer within {:?}", self.connect_timeout),
                format!("{reachable} and {}.connect_timeout", self.section),
            ),
            Some(sqlx::Error::Io(e)) => {
                let reason = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                    std::io::ErrorKind::TimedOut => "connection timed out".to_owned(),
                    std::io::ErrorKind::ConnectionReset => "connection reset by the server".to_owned(),
                    _ => e.to_string(),
                };
                (reason, reachable)
            }
            Some(sqlx::Error::Tls(e)) => (
                format!("TLS failed: {e}"),
                format!("check the server's TLS set-up and the sslmode/ssl-mode parameter of {url_key}"),
            ),
            Some(sqlx::Error::Protocol(e)) => {
                (format!("unexpected answer: {e}"), format!("is this a {kind} server? check {url_key}"))
            }
            Some(sqlx::Error::Database(db)) => {
                (db.message().to_owned(), database_hint(kind, db.code().as_deref(), &url_key))
            }
            Some(e) => (e.to_string(), format!("check {url_key}")),
        };
        DataError::Connect { kind, url: redact_url(self.url), reason: scrub(&reason, self.url), hint, cause }
    }
}

/// Errors worth retrying while the server starts.
fn transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::ConnectionRefused,
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("57P03")),
        _ => false,
    }
}

fn database_hint(kind: DbKind, code: Option<&str>, url_key: &str) -> String {
    let credentials = format!("check the user name and password in {url_key}");
    let database = format!("does the database exist? check the database name in {url_key}");
    let busy = "the server has too many connections; lower max_connections or raise the server's limit".to_owned();
    match (kind, code) {
        (DbKind::Postgres, Some("28P01" | "28000")) => credentials,
        (DbKind::Postgres, Some("3D000")) => database,
        (DbKind::Postgres, Some("57P03")) => "the server is starting up; try again shortly".to_owned(),
        (DbKind::Postgres, Some("53300")) => busy,
        // MySQL reports SQLSTATE 28000 for access denied and 42000 for an unknown database.
        (DbKind::MySql, Some("28000")) => credentials,
        (DbKind::MySql, Some("42000")) => format!("{database}, and that the user may use it"),
        (DbKind::MySql, Some("08004")) => busy,
        (DbKind::Sqlite, _) => format!(
            "check that the directory in {url_key} is writable, and that the URL ends with ?mode=rwc if the file should be created"
        ),
        _ => format!("check {url_key}"),
    }
}

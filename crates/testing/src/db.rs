//! Isolated real databases for tests.
//!
//! Each [`TestDatabase`] is a fresh database of its own: `CREATE DATABASE mf_test_<uuid>` on the
//! PostgreSQL or MariaDB/MySQL server named by `MF_TEST_POSTGRES_URL` / `MF_TEST_MYSQL_URL`
//! (defaults `postgres://postgres@127.0.0.1:5432/test` and `mysql://root@127.0.0.1:3306/test`),
//! or a SQLite file in a temporary directory. It is dropped by
//! [`TestDatabase::drop_database`], or, failing that, when the value is dropped.
//!
//! When a server is unreachable the constructor prints `skipping: ...` and returns `None`, so
//! tests pass on machines without it; under CI (`CI=true`) it panics instead, because there an
//! absent server is a failure, not a reason to skip. See [`require_server`].
//!
//! ```no_run
//! # async fn demo() {
//! use microframework_testing::db::TestDatabase;
//! let Some(db) = TestDatabase::postgres().await else { return };
//! // ... connect to db.url(), run the test ...
//! db.drop_database().await;
//! # }
//! ```

use std::path::PathBuf;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use std::time::Duration;

#[cfg(feature = "mysql")]
use sqlx::MySqlConnection;
#[cfg(feature = "postgres")]
use sqlx::PgConnection;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use sqlx::{AssertSqlSafe, Connection};

/// Environment variable naming the PostgreSQL server used by tests.
pub const POSTGRES_URL_VAR: &str = "MF_TEST_POSTGRES_URL";
/// Environment variable naming the MySQL/MariaDB server used by tests.
pub const MYSQL_URL_VAR: &str = "MF_TEST_MYSQL_URL";
/// The PostgreSQL server used when [`POSTGRES_URL_VAR`] is unset.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The MySQL/MariaDB server used when [`MYSQL_URL_VAR`] is unset.
pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// How long to wait for a test server before deciding it is unreachable.
#[cfg(any(feature = "postgres", feature = "mysql"))]
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The kind of a [`TestDatabase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TestDbKind {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A database on the PostgreSQL test server.
    Postgres,
    /// A database on the MySQL/MariaDB test server.
    MySql,
}

/// A database that exists only for one test.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    kind: TestDbKind,
    /// URL of the server's administrative database, used to create and drop this one.
    admin_url: String,
    /// The database name (the file name for SQLite).
    name: String,
    /// The directory holding a SQLite file; removed when dropped.
    dir: Option<tempfile::TempDir>,
    /// Set once the database has been dropped.
    dropped: bool,
}

impl TestDatabase {
    /// A new, empty database on the PostgreSQL test server, or `None` (after printing
    /// `skipping: PostgreSQL not reachable at <url>`) when the server is unreachable.
    ///
    /// # Panics
    ///
    /// When the server is unreachable and `CI=true`, or when it refuses to create the database.
    #[cfg(feature = "postgres")]
    pub async fn postgres() -> Option<Self> {
        let admin_url = env_url(POSTGRES_URL_VAR, DEFAULT_POSTGRES_URL);
        let mut conn = match connect_pg(&admin_url).await {
            Ok(c) => c,
            Err(e) => {
                require_server("PostgreSQL", &admin_url, false);
                eprintln!("  ({e})");
                return None;
            }
        };
        let name = unique_name();
        if let Err(e) = sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut conn).await {
            panic!("cannot create test database {name} on PostgreSQL at {}: {e}", redact(&admin_url));
        }
        let _ = conn.close().await;
        let url = with_database(&admin_url, &name);
        Some(Self { url, kind: TestDbKind::Postgres, admin_url, name, dir: None, dropped: false })
    }

    /// A new, empty database on the MySQL/MariaDB test server, or `None` (after printing
    /// `skipping: MySQL not reachable at <url>`) when the server is unreachable.
    ///
    /// # Panics
    ///
    /// When the server is unreachable and `CI=true`, or when it refuses to create the database.
    #[cfg(feature = "mysql")]
    pub async fn mysql() -> Option<Self> {
        let admin_url = env_url(MYSQL_URL_VAR, DEFAULT_MYSQL_URL);
        let mut conn = match connect_mysql(&admin_url).await {
            Ok(c) => c,
            Err(e) => {
                require_server("MySQL", &admin_url, false);
                eprintln!("  ({e})");
                return None;
            }
        };
        let name = unique_name();
        if let Err(e) = sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE `{name}`"))).execute(&mut conn).await {
            panic!("cannot create test database {name} on MySQL at {}: {e}", redact(&admin_url));
        }
        let _ = conn.close().await;
        let url = with_database(&admin_url, &name);
        Some(Self { url, kind: TestDbKind::MySql, admin_url, name, dir: None, dropped: false })
    }

    /// A new SQLite database file (`test.db`, created on first connection) in a fresh
    /// temporary directory, removed when this value is dropped.
    ///
    /// # Panics
    ///
    /// When no temporary directory can be created.
    pub async fn sqlite() -> Self {
        let dir = match tempfile::Builder::new().prefix("mf_test_").tempdir() {
            Ok(d) => d,
            Err(e) => panic!("cannot create a temporary directory for a SQLite test database: {e}"),
        };
        let path: PathBuf = dir.path().join("test.db");
        let url = format!("sqlite://{}?mode=rwc", encode_path(&path.to_string_lossy()));
        Self {
            url,
            kind: TestDbKind::Sqlite,
            admin_url: String::new(),
            name: "test.db".to_owned(),
            dir: Some(dir),
            dropped: false,
        }
    }

    /// The URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The kind of database.
    pub fn kind(&self) -> TestDbKind {
        self.kind
    }

    /// The database name (`mf_test_<uuid>`; `test.db` for SQLite).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database (`DROP DATABASE ... WITH (FORCE)` on PostgreSQL, which also ends
    /// connections still open), or removes the SQLite directory. Failures are printed, not
    /// raised: a test should not fail while cleaning up.
    pub async fn drop_database(mut self) {
        self.dropped = true;
        if let Err(e) = drop_server_database(self.kind, &self.admin_url, &self.name).await {
            eprintln!("warning: cannot drop test database {}: {e}", self.name);
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

impl Drop for TestDatabase {
    /// Drops the database if [`TestDatabase::drop_database`] was not called, on a separate
    /// thread with its own runtime (this may run inside, or outside, an async runtime).
    fn drop(&mut self) {
        if self.dropped || self.kind == TestDbKind::Sqlite {
            return;
        }
        self.dropped = true;
        let (kind, admin_url, name) = (self.kind, self.admin_url.clone(), self.name.clone());
        let worker = std::thread::Builder::new().name("mf-test-db-drop".to_owned()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("warning: cannot drop test database {name}: no runtime: {e}");
                    return;
                }
            };
            if let Err(e) = runtime.block_on(drop_server_database(kind, &admin_url, &name)) {
                eprintln!("warning: cannot drop test database {name}: {e}");
            }
        });
        match worker {
            Ok(handle) => {
                let _ = handle.join();
            }
            Err(e) => eprintln!("warning: cannot drop test database {}: {e}", self.name),
        }
    }
}

/// Applies the rule for test servers: returns `true` when `reachable`; otherwise panics if
/// `CI=true` (under CI an absent server is a failure), or prints
/// `skipping: <name> not reachable at <url>` and returns `false`.
///
/// ```no_run
/// # fn redis_is_up() -> bool { false }
/// use microframework_testing::db::require_server;
/// if !require_server("Redis", "redis://127.0.0.1:6379", redis_is_up()) {
///     return; // skipped
/// }
/// ```
///
/// # Panics
///
/// When the server is unreachable and the environment variable `CI` is `true` (or `1`).
pub fn require_server(name: &str, url: &str, reachable: bool) -> bool {
    if reachable {
        return true;
    }
    let url = redact(url);
    if is_ci() {
        panic!("{name} not reachable at {url}, and CI=true: under CI the test servers must be running");
    }
    eprintln!("skipping: {name} not reachable at {url}");
    false
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
fn env_url(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_owned())
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
fn unique_name() -> String {
    format!("mf_test_{}", uuid::Uuid::new_v4().simple())
}

#[cfg(feature = "postgres")]
async fn connect_pg(url: &str) -> Result<PgConnection, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

#[cfg(feature = "mysql")]
async fn connect_mysql(url: &str) -> Result<MySqlConnection, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, MySqlConnection::connect(url)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

async fn drop_server_database(kind: TestDbKind, admin_url: &str, name: &str) -> Result<(), String> {
    let _ = (admin_url, name);
    match kind {
        TestDbKind::Sqlite => Ok(()),
        #[cfg(feature = "postgres")]
        TestDbKind::Postgres => {
            let mut conn = connect_pg(admin_url).await?;
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            let result =
                sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await.map(drop).map_err(|e| e.to_string());
            let _ = conn.close().await;
            result
        }
        #[cfg(feature = "mysql")]
        TestDbKind::MySql => {
            let mut conn = connect_mysql(admin_url).await?;
            let sql = format!("DROP DATABASE IF EXISTS `{name}`");
            let result =
                sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await.map(drop).map_err(|e| e.to_string());
            let _ = conn.close().await;
            result
        }
        // Only the constructors above make server databases, each behind its feature.
        #[allow(unreachable_patterns)]
        _ => Ok(()),
    }
}

/// `scheme://auth@host:port/<old>?query` -> the same URL naming database `name`.
#[cfg(any(feature = "postgres", feature = "mysql", test))]
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The URL with its password replaced by `***`.
fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let end = url[start..].find(['/', '?']).map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..start], &url[start + at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Escapes the characters that would end the path of a `sqlite://` URL.
fn encode_path(path: &str) -> String {
    path.replace('%', "%25").replace('?', "%3F").replace('#', "%23")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_helpers() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(with_database("mysql://root@127.0.0.1:3306", "x"), "mysql://root@127.0.0.1:3306/x");
        assert_eq!(with_database("postgres://u:p@h/test?sslmode=disable", "x"), "postgres://u:p@h/x?sslmode=disable");
        assert_eq!(redact("postgres://u:secret@h:5432/test"), "postgres://u:***@h:5432/test");
        assert_eq!(redact("mysql://root@h/test"), "mysql://root@h/test");
        assert!(require_server("Thing", "x://h", true));
        if !is_ci() {
            assert!(!require_server("Thing", "x://u:secret@h", false));
        }
    }
}

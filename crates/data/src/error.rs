//! Errors of this crate and their mapping to the protocol-neutral [`microframework_core::Error`].

use std::path::PathBuf;

use microframework_core::{Error, ErrorKind};
use sqlx::error::{DatabaseError, ErrorKind as SqlxKind};
use sqlx::migrate::MigrateError;

use crate::url::DbKind;

/// The message clients see when the database is down.
pub(crate) const UNAVAILABLE: &str = "the database is unavailable; try again later";

/// An error from the database layer.
///
/// Convert it into [`microframework_core::Error`] with `?` or `.into()` in handlers: a missing
/// row becomes `NotFound`, a duplicate key `Conflict`, a constraint violation `Validation`, an
/// outage `Unavailable`, anything else `Internal` (the details stay in the hidden cause).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The [`DatabaseConfig`](crate::DatabaseConfig) is invalid.
    #[error("{0}")]
    Config(microframework_core::ConfigError),
    /// The database URL cannot be used.
    #[error("invalid database URL for `{key}`: {reason}")]
    InvalidUrl {
        /// The configuration key (`database.url`).
        key: String,
        /// What is wrong, with the password redacted.
        reason: String,
    },
    /// The start-up connection failed.
    #[error("cannot connect to {kind} at {url}: {reason} ({hint})")]
    Connect {
        /// The kind of database.
        kind: DbKind,
        /// The URL, password redacted.
        url: String,
        /// What went wrong (`connection refused`, `password authentication failed ...`).
        reason: String,
        /// What to check.
        hint: String,
        /// The underlying error, when there is one (not part of the error chain, as `reason`
        /// already describes it).
        cause: Option<sqlx::Error>,
    },
    /// The directory for the SQLite file cannot be created.
    #[error("cannot create the directory {} for the SQLite database: {cause} (check the path in {key})", path.display())]
    CreateDir {
        /// The configuration key (`database.url`).
        key: String,
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// [`Database::migrate`](crate::Database::migrate) was given no migrations for this kind.
    #[error("no migrations for {0} were embedded")]
    NoMigrations(DbKind),
    /// Loading or running migrations failed.
    #[error("migrating the {kind} database failed: {cause}")]
    Migrate {
        /// The kind of database.
        kind: DbKind,
        /// What sqlx reported.
        cause: MigrateError,
    },
    /// A query or pool operation failed.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

impl DataError {
    /// Whether the error means the database is unreachable, overloaded, starting up or shutting
    /// down: worth retrying later, and reported to clients as `503 Service Unavailable`.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Connect { .. } => true,
            Self::Sqlx(e) => is_unavailable(e),
            Self::Migrate { cause, .. } => migrate_unavailable(cause),
            _ => false,
        }
    }

    /// The underlying sqlx error, if any.
    pub fn sqlx_error(&self) -> Option<&sqlx::Error> {
        match self {
            Self::Sqlx(e) => Some(e),
            Self::Connect { cause, .. } => cause.as_ref(),
            Self::Migrate { cause: MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _), .. } => Some(e),
            _ => None,
        }
    }

    /// The database error returned by the server, if this is one.
    pub fn database_error(&self) -> Option<&(dyn DatabaseError + 'static)> {
        self.sqlx_error().and_then(sqlx::Error::as_database_error)
    }

    /// Whether a query expected a row and found none.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Sqlx(sqlx::Error::RowNotFound))
    }

    /// Whether this is a unique or primary-key violation.
    pub fn is_unique_violation(&self) -> bool {
        self.database_error().is_some_and(|e| e.kind() == SqlxKind::UniqueViolation)
    }
}

fn migrate_unavailable(e: &MigrateError) -> bool {
    match e {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => is_unavailable(e),
        _ => false,
    }
}

/// Whether a sqlx error means the database is unavailable (see [`DataError::is_unavailable`]).
pub(crate) fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => database_unavailable(db.as_ref()),
        sqlx::Error::Migrate(m) => migrate_unavailable(m),
        _ => false,
    }
}

fn database_unavailable(db: &dyn DatabaseError) -> bool {
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let code = pg.code();
        // 08: connection exception; 57P01-03: admin/crash shutdown, starting up;
        // 53300: too many connections.
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
    }
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        // 1040 too many connections, 1053 server shutdown in progress, 1203 too many user
        // connections, 1927 connection killed (MariaDB), 2002/2003/2006/2013 connection lost,
        // 4031 disconnected by the server (MySQL).
        return my.code().is_some_and(|c| c.starts_with("08"))
            || matches!(my.number(), 1040 | 1053 | 1203 | 1927 | 2002 | 2003 | 2006 | 2013 | 4031);
    }
    #[cfg(feature = "sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), including their extended codes.
        let code: i64 = db.code().and_then(|c| c.parse().ok()).unwrap_or(0);
        return matches!(code & 0xff, 5 | 6);
    }
    false
}

/// The columns (or, failing that, the constraint) behind a unique violation.
fn unique_target(db: &dyn DatabaseError) -> Option<String> {
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        // DETAIL: Key (email)=(a@example.com) already exists.
        if let Some(cols) = pg.detail().and_then(|d| d.strip_prefix("Key (")).and_then(|d| d.split_once(")=")) {
            return Some(cols.0.to_owned());
        }
        return pg.constraint().map(str::to_owned);
    }
    let msg = db.message();
    // SQLite: UNIQUE constraint failed: users.email, users.tenant
    if let Some(cols) = msg.strip_prefix("UNIQUE constraint failed: ") {
        return Some(columns(cols));
    }
    // MySQL/MariaDB: Duplicate entry 'a@example.com' for key 'users.email' (or 'email')
    if let Some(idx) = msg.rfind("for key '") {
        let key = msg[idx + 9..].trim_end_matches('\'');
        let key = key.rsplit('.').next().unwrap_or(key);
        return Some(if key == "PRIMARY" { "primary key".to_owned() } else { key.to_owned() });
    }
    db.constraint().map(str::to_owned)
}

/// The column behind a not-null violation.
fn not_null_column(db: &dyn DatabaseError) -> Option<String> {
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return pg.column().map(str::to_owned);
    }
    let msg = db.message();
    // SQLite: NOT NULL constraint failed: users.name
    if let Some(col) = msg.strip_prefix("NOT NULL constraint failed: ") {
        return Some(columns(col));
    }
    // MySQL: Column 'name' cannot be null / Field 'name' doesn't have a default value
    for prefix in ["Column '", "Field '"] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            return rest.split_once('\'').map(|(c, _)| c.to_owned());
        }
    }
    None
}

/// `users.email, users.tenant` -> `email, tenant`.
fn columns(list: &str) -> String {
    list.split(", ").map(|c| c.rsplit('.').next().unwrap_or(c).trim()).collect::<Vec<_>>().join(", ")
}

impl From<DataError> for Error {
    fn from(e: DataError) -> Self {
        if e.is_not_found() {
            return Error::not_found("the requested record does not exist").with_source(e);
        }
        if e.is_unavailable() {
            return Error::unavailable(UNAVAILABLE).with_source(e);
        }
        let Some(db) = e.database_error() else {
            return Error::internal(e);
        };
        match db.kind() {
            SqlxKind::UniqueViolation => {
                let target = unique_target(db).unwrap_or_else(|| "key".to_owned());
                Error::conflict(format!("a record with the same {target} already exists")).with_source(e)
            }
            SqlxKind::ForeignKeyViolation => Error::conflict(
                "the record refers to a record that does not exist, or is still referred to by other records",
            )
            .with_source(e),
            SqlxKind::NotNullViolation => {
                let err = Error::new(ErrorKind::Validation, "a required value is missing");
                match not_null_column(db) {
                    Some(col) => err.with_field(col, "is required").with_source(e),
                    None => err.with_source(e),
                }
            }
            SqlxKind::CheckViolation | SqlxKind::ExclusionViolation => {
                Error::new(ErrorKind::Validation, "a value is not allowed by the database constraints").with_source(e)
            }
            _ => match refused_value(db) {
                // The client sent something the database cannot store: its fault, not ours.
                Some(why) => Error::new(ErrorKind::Validation, why).with_source(e),
                None => Error::internal(e),
            },
        }
    }
}

/// Why the database refused a value the client sent, for data errors caused by input: text it
/// cannot encode (PostgreSQL refuses NUL characters), values too long or out of range, text
/// that does not parse as the column's type.
fn refused_value(db: &dyn DatabaseError) -> Option<&'static str> {
    // Not every driver reports every class (SQLite stores NUL and checks no range).
    #[allow(dead_code)]
    const ENCODING: &str = "a text value contains a character the database cannot store (such as NUL)";
    const TOO_LONG: &str = "a value is longer than the database allows";
    #[allow(dead_code)]
    const RANGE: &str = "a value is out of the range the database allows";
    const FORMAT: &str = "a value does not have the format the database expects";
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        // Class 22: data exception.
        return match pg.code() {
            "22021" | "22P05" => Some(ENCODING),
            "22001" => Some(TOO_LONG),
            "22003" | "22008" => Some(RANGE),
            "22007" | "22P02" => Some(FORMAT),
            _ => None,
        };
    }
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return match my.number() {
            1366 | 1300 => Some(ENCODING),
            1406 => Some(TOO_LONG),
            1264 | 1690 => Some(RANGE),
            1292 | 1411 => Some(FORMAT),
            _ => None,
        };
    }
    #[cfg(feature = "sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // SQLITE_TOOBIG (18) and SQLITE_MISMATCH (20).
        let code: i64 = db.code().and_then(|c| c.parse().ok()).unwrap_or(0);
        return match code & 0xff {
            18 => Some(TOO_LONG),
            20 => Some(FORMAT),
            _ => None,
        };
    }
    let _ = db;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_errors_map_by_kind() {
        let e: Error = DataError::from(sqlx::Error::RowNotFound).into();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        for unavailable in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
            sqlx::Error::Protocol("unexpected eof".into()),
        ] {
            let data = DataError::from(unavailable);
            assert!(data.is_unavailable());
            let e: Error = data.into();
            assert_eq!(e.kind(), ErrorKind::Unavailable);
            assert_eq!(e.message(), UNAVAILABLE);
        }
        let e: Error = DataError::from(sqlx::Error::ColumnNotFound("secret_column".into())).into();
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(!e.message().contains("secret_column"));
        assert!(e.cause().is_some());
        let e: Error = DataError::NoMigrations(DbKind::Postgres).into();
        assert_eq!(e.kind(), ErrorKind::Internal);
    }

    #[test]
    fn column_lists() {
        assert_eq!(columns("users.email"), "email");
        assert_eq!(columns("users.tenant, users.email"), "tenant, email");
        assert_eq!(DataError::NoMigrations(DbKind::Postgres).to_string(), "no migrations for PostgreSQL were embedded");
    }
}

//! The `database` configuration section.

use std::time::Duration;

use microframework_core::{Validate, Validation};
use serde::{Deserialize, Serialize};

use crate::url::{DbKind, redact_url};

/// The longest accepted timeout: longer ones are mistakes (and would overflow deadlines).
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// Settings of the `database` section.
///
/// ```yaml
/// database:
///   url: postgres://app:${DB_PASSWORD}@db:5432/users
///   max_connections: 10
///   acquire_timeout: 3s
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The database URL (`sqlite:`, `postgres:`/`postgresql:` or `mysql:`/`mariadb:`). Unset
    /// means the component's default, `sqlite://data/<service-name>.db?mode=rwc`.
    pub url: Option<String>,
    /// The most connections the pool opens (default 10).
    pub max_connections: u32,
    /// Connections the pool keeps open even when idle (default 0).
    pub min_connections: u32,
    /// How long a query waits for a connection before failing with "unavailable" (default 3s).
    /// Keep it short: during an outage requests should fail fast instead of hanging.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// How long the start-up connection attempt may take, retries included (default 5s).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Idle connections are closed after this long (default 10m; `null` keeps them).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// Connections are replaced after this long (default 30m; `null` keeps them).
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Option<Duration>,
    /// Whether to run the embedded migrations at start-up (default true).
    pub migrate: bool,
    /// How long the readiness check's ping may take (default 2s).
    #[serde(with = "humantime_serde")]
    pub health_timeout: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            migrate: true,
            health_timeout: Duration::from_secs(2),
        }
    }
}

impl DatabaseConfig {
    /// A configuration with defaults and this URL.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self { url: Some(url.into()), ..Self::default() }
    }
}

impl Validate for DatabaseConfig {
    fn validate(&self, v: &mut Validation) {
        if let Some(url) = &self.url
            && let Err(problem) = check_url(url)
        {
            v.error("url", problem);
        }
        v.check(self.max_connections >= 1, "max_connections", "a number of at least 1");
        v.check(
            self.min_connections <= self.max_connections,
            "min_connections",
            format!("a number not above `max_connections` ({})", self.max_connections),
        );
        for (key, value) in [
            ("acquire_timeout", self.acquire_timeout),
            ("connect_timeout", self.connect_timeout),
            ("health_timeout", self.health_timeout),
        ] {
            v.check(!value.is_zero() && value <= MAX_TIMEOUT, key, "a duration above zero and at most 1h, such as 3s");
        }
    }
}

/// Checks a database URL; the message says what a valid one looks like (password redacted).
pub(crate) fn check_url(url: &str) -> Result<DbKind, String> {
    const EXAMPLES: &str = "such as sqlite://data/app.db?mode=rwc, postgres://user:password@host:5432/db or \
                            mysql://user:password@host:3306/db";
    let shown = redact_url(url);
    if url.trim().is_empty() {
        return Err(format!("a database URL, {EXAMPLES}; found an empty string"));
    }
    let Some(kind) = DbKind::from_url(url) else {
        return Err(format!("a URL with scheme {} ({EXAMPLES}); found `{shown}`", DbKind::SCHEMES));
    };
    let example = match kind {
        DbKind::Sqlite => "sqlite://data/app.db?mode=rwc or sqlite::memory:",
        DbKind::Postgres => "postgres://user:password@host:5432/db",
        DbKind::MySql => "mysql://user:password@host:3306/db",
    };
    if let Err(e) = ::url::Url::parse(url) {
        return Err(format!("a valid {kind} URL such as {example}; found `{shown}`, which is not a URL: {e}"));
    }
    let parsed = match kind {
        #[cfg(feature = "sqlite")]
        DbKind::Sqlite => url.parse::<sqlx::sqlite::SqliteConnectOptions>().map(drop),
        #[cfg(feature = "postgres")]
        DbKind::Postgres => url.parse::<sqlx::postgres::PgConnectOptions>().map(drop),
        #[cfg(feature = "mysql")]
        DbKind::MySql => url.parse::<sqlx::mysql::MySqlConnectOptions>().map(drop),
        #[allow(unreachable_patterns)]
        other => return Err(crate::url::missing_driver(other)),
    };
    parsed.map(|()| kind).map_err(|e| {
        let reason = crate::url::scrub(&e.to_string(), url);
        format!("a valid {kind} URL such as {example}; found `{shown}`: {reason}")
    })
}

#[cfg(test)]
mod tests {
    use microframework_core::Config;

    use super::*;

    #[test]
    fn defaults_and_durations() {
        let cfg = Config::from_yaml("database:\n  acquire_timeout: 500ms\n  idle_timeout: null\n").unwrap();
        let db: DatabaseConfig = cfg.section("database").unwrap();
        assert_eq!(db.acquire_timeout, Duration::from_millis(500));
        assert_eq!(db.idle_timeout, None);
        assert_eq!(db.max_lifetime, Some(Duration::from_secs(1800)));
        assert_eq!(db.max_connections, 10);
        assert!(db.migrate);
        let empty: DatabaseConfig = Config::from_yaml("").unwrap().section("database").unwrap();
        assert_eq!(empty, DatabaseConfig::default());
    }

    #[test]
    fn every_problem_is_reported() {
        let cfg = Config::from_yaml(
            "database:\n  url: redis://u:hunter22@cache/0\n  max_connections: 0\n  min_connections: 2\n  health_timeout: 0s\n  connect_timeout: 100y\n",
        )
        .unwrap();
        let err = cfg.section::<DatabaseConfig>("database").unwrap_err();
        let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "database.url",
                "database.max_connections",
                "database.min_connections",
                "database.connect_timeout",
                "database.health_timeout"
            ]
        );
        let url = &err.problems()[0].message;
        assert!(url.contains("postgres:") && url.contains("mariadb:") && url.contains("sqlite:"), "{url}");
        assert!(!err.to_string().contains("hunter22"), "{err}");
    }

    #[test]
    fn urls() {
        assert_eq!(check_url("sqlite://data/app.db?mode=rwc"), Ok(DbKind::Sqlite));
        assert_eq!(check_url("sqlite::memory:"), Ok(DbKind::Sqlite));
        assert_eq!(check_url("postgresql://app:pw@db:5432/users"), Ok(DbKind::Postgres));
        assert_eq!(check_url("mariadb://root@db/test"), Ok(DbKind::MySql));
        assert!(check_url("").is_err());
        assert!(check_url("sqlite://x.db?mode=bogus").unwrap_err().contains("mode"));
        let e = check_url("postgres://app:topsecret@db:notaport/users").unwrap_err();
        assert!(e.contains("not a URL") && !e.contains("topsecret"), "{e}");
        let unknown = Config::from_yaml("database:\n  pool_size: 3\n")
            .unwrap()
            .section::<DatabaseConfig>("database")
            .unwrap_err();
        assert_eq!(unknown.problems()[0].key, "database.pool_size");
    }
}

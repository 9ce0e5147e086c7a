//! Database URLs: which kind of database a URL names, and redaction of passwords.

use std::fmt;

/// The kind of SQL database behind a [`Database`](crate::Database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbKind {
    /// SQLite (`sqlite:` URLs).
    Sqlite,
    /// PostgreSQL (`postgres:` or `postgresql:` URLs).
    Postgres,
    /// MySQL or MariaDB (`mysql:` or `mariadb:` URLs).
    MySql,
}

impl DbKind {
    /// The URL schemes accepted, for messages.
    pub const SCHEMES: &'static str = "sqlite:, postgres:, postgresql:, mysql: or mariadb:";

    /// The kind named by the scheme of `url` (case-insensitive), or `None` for other schemes.
    ///
    /// ```
    /// use microframework_data::DbKind;
    /// assert_eq!(DbKind::from_url("postgresql://db/users"), Some(DbKind::Postgres));
    /// assert_eq!(DbKind::from_url("mariadb://db/users"), Some(DbKind::MySql));
    /// assert_eq!(DbKind::from_url("sqlite::memory:"), Some(DbKind::Sqlite));
    /// assert_eq!(DbKind::from_url("redis://cache"), None);
    /// ```
    pub fn from_url(url: &str) -> Option<Self> {
        let (scheme, _) = url.trim_start().split_once(':')?;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            _ => None,
        }
    }

    /// The product name: `SQLite`, `PostgreSQL` or `MySQL`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
            Self::MySql => "MySQL",
        }
    }
}

impl DbKind {
    /// The Cargo feature that compiles this kind's driver.
    pub fn feature(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
        }
    }

    /// Whether this build has the driver for this kind.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Sqlite => cfg!(feature = "sqlite"),
            Self::Postgres => cfg!(feature = "postgres"),
            Self::MySql => cfg!(feature = "mysql"),
        }
    }
}

/// The message for a URL whose driver this build does not have.
pub(crate) fn missing_driver(kind: DbKind) -> String {
    let compiled: Vec<&str> = [DbKind::Sqlite, DbKind::Postgres, DbKind::MySql]
        .into_iter()
        .filter(|k| k.is_compiled())
        .map(DbKind::feature)
        .collect();
    format!(
        "a database this service was built for: {kind} needs the `{feature}` feature of microframework \
         (microframework = {{ ..., features = [\"{feature}\"] }}); this build has {compiled}",
        feature = kind.feature(),
        compiled = if compiled.is_empty() { "none".to_owned() } else { compiled.join(", ") },
    )
}

impl fmt::Display for DbKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Query parameters whose values are secrets.
const SECRET_PARAMS: &[&str] = &["password", "pass", "pwd", "sslpassword", "ssl-password"];

/// The mask that replaces secrets.
const MASK: &str = "***";

/// Returns `url` with its password (and any `password=` query parameter) replaced by `***`,
/// for logs and error messages. Works on malformed URLs too; the rest is kept as written.
///
/// ```
/// use microframework_data::redact_url;
/// assert_eq!(redact_url("postgres://app:s3cret@db:5432/users"), "postgres://app:***@db:5432/users");
/// assert_eq!(redact_url("postgres://db/users?user=app&password=s3cret"), "postgres://db/users?user=app&password=***");
/// assert_eq!(redact_url("sqlite://data/app.db?mode=rwc"), "sqlite://data/app.db?mode=rwc");
/// ```
pub fn redact_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    match userinfo_span(before_query) {
        Some((start, end)) => {
            let userinfo = &before_query[start..end];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(&before_query[..start]);
                    out.push_str(user);
                    out.push(':');
                    out.push_str(MASK);
                    out.push_str(&before_query[end..]);
                }
                None => out.push_str(before_query),
            }
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        out.push('?');
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => {
                    format!("{k}={MASK}")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
        if let Some(fragment) = fragment {
            out.push('#');
            out.push_str(fragment);
        }
    }
    out
}

/// Byte range of the userinfo (`user:password`) in the part of `url` before the query.
fn userinfo_span(before_query: &str) -> Option<(usize, usize)> {
    let start = before_query.find("://")? + 3;
    let rest = &before_query[start..];
    let at = rest.rfind('@')?;
    let userinfo = &rest[..at];
    // An `@` in the path (after the first `/` that precedes any `:`) is not userinfo.
    if let Some(slash) = userinfo.find('/')
        && userinfo.find(':').is_none_or(|colon| slash < colon)
    {
        return None;
    }
    Some((start, start + at))
}

/// The secrets in `url` (password and secret query parameters), percent-decoded and raw.
pub(crate) fn secrets_of(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let before_query = url.split_once('?').map_or(url, |(b, _)| b);
    if let Some((start, end)) = userinfo_span(before_query)
        && let Some((_, password)) = before_query[start..end].split_once(':')
    {
        out.push(password.to_owned());
    }
    if let Ok(parsed) = ::url::Url::parse(url) {
        if let Some(p) = parsed.password() {
            out.push(p.to_owned());
            if let Ok(decoded) = percent_decode(p) {
                out.push(decoded);
            }
        }
        for (k, v) in parsed.query_pairs() {
            if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) {
                out.push(v.into_owned());
            }
        }
    }
    // Very short secrets would mangle unrelated text; they are not scrubbed from free text.
    out.retain(|s| s.len() >= 4);
    out.sort();
    out.dedup();
    out
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
}

/// Replaces every secret of `url` found in `text` with `***`.
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let mut out = text.to_owned();
    for secret in secrets_of(url) {
        out = out.replace(&secret, MASK);
    }
    out
}

/// The default URL for service `service`: a SQLite file under `data/`, created if missing.
pub(crate) fn default_url(service: &str) -> String {
    let name: String = service
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    let name = name.trim_start_matches('.');
    let name = if name.is_empty() { "app" } else { name };
    format!("sqlite://data/{name}.db?mode=rwc")
}

/// Whether a SQLite URL names an in-memory database.
#[cfg(feature = "sqlite")]
pub(crate) fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.split_once('?').is_some_and(|(_, q)| q.split('&').any(|p| p == "mode=memory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_detection() {
        assert_eq!(DbKind::from_url("sqlite://data/app.db?mode=rwc"), Some(DbKind::Sqlite));
        assert_eq!(DbKind::from_url("sqlite::memory:"), Some(DbKind::Sqlite));
        assert_eq!(DbKind::from_url("SQLite:app.db"), Some(DbKind::Sqlite));
        assert_eq!(DbKind::from_url("postgres://u@h/db"), Some(DbKind::Postgres));
        assert_eq!(DbKind::from_url("postgresql://u@h/db"), Some(DbKind::Postgres));
        assert_eq!(DbKind::from_url("mysql://u@h/db"), Some(DbKind::MySql));
        assert_eq!(DbKind::from_url("mariadb://u@h/db"), Some(DbKind::MySql));
        assert_eq!(DbKind::from_url("redis://h"), None);
        assert_eq!(DbKind::from_url("postgres"), None);
        assert_eq!(DbKind::from_url(""), None);
        assert_eq!(DbKind::Postgres.name(), "PostgreSQL");
        assert_eq!(DbKind::MySql.to_string(), "MySQL");
        assert_eq!(DbKind::Sqlite.name(), "SQLite");
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/users"), "postgres://app:***@db:5432/users");
        assert_eq!(redact_url("postgres://app@db:5432/users"), "postgres://app@db:5432/users");
        assert_eq!(redact_url("postgres://db:5432/users"), "postgres://db:5432/users");
        assert_eq!(redact_url("mysql://root:@127.0.0.1/test"), "mysql://root:***@127.0.0.1/test");
        // `@` inside the password, unencoded.
        assert_eq!(redact_url("postgres://app:p@ss@db/users"), "postgres://app:***@db/users");
        assert_eq!(
            redact_url("postgres://app:p%40ss@db/users?sslmode=require"),
            "postgres://app:***@db/users?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/users?user=app&Password=x&sslmode=disable"),
            "postgres://db/users?user=app&Password=***&sslmode=disable"
        );
        assert_eq!(redact_url("postgres://h/db@x"), "postgres://h/db@x");
        // Ambiguous: an unencoded `/` in a password, or an `@` in the path. Err on the side of hiding.
        assert_eq!(redact_url("postgres://h:5432/db@x"), "postgres://h:***@x");
        assert_eq!(redact_url("postgres://app:pa/ss@db/users"), "postgres://app:***@db/users");
        assert_eq!(redact_url("not a url :secret@"), "not a url :secret@");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn scrubbing() {
        let url = "postgres://app:p%40ssword@db/users?password=other-secret";
        let text = "failed for p@ssword, p%40ssword and other-secret";
        assert_eq!(scrub(text, url), "failed for ***, *** and ***");
        assert_eq!(scrub("nothing here", "postgres://app:ab@db/x"), "nothing here");
    }

    #[test]
    fn defaults_and_memory() {
        assert_eq!(default_url("users-service"), "sqlite://data/users-service.db?mode=rwc");
        assert_eq!(default_url("../evil name"), "sqlite://data/_evil_name.db?mode=rwc");
        assert_eq!(default_url(""), "sqlite://data/app.db?mode=rwc");
        assert!(is_sqlite_memory("sqlite::memory:"));
        assert!(is_sqlite_memory("sqlite://x?mode=memory&cache=shared"));
        assert!(!is_sqlite_memory("sqlite://data/x.db?mode=rwc"));
    }
}

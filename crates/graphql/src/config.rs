//! The `graphql` configuration section.

use std::time::Duration;

use axum::http::{HeaderMap, Method, Uri};
use serde::{Deserialize, Serialize};

use microframework_core::{AppContext, ByteSize, ConfigError, Validate, Validation};

/// The `graphql` section of the service configuration.
///
/// ```yaml
/// graphql:
///   path: /graphql              # POST and GET (queries only) for queries and mutations
///   ws_path: /graphql/ws        # subscriptions over WebSocket
///   graphiql: true              # GET on `path` from a browser serves the GraphiQL IDE
///   introspection: true
///   max_depth: 10
///   max_complexity: 256
///   max_body: 1MiB              # optional; never above `http.body_limit.max`
///   subscription_keepalive: 15s # WebSocket ping interval, 0s turns it off
///   connection_init_timeout: 10s
///   max_ws_connections: 10000   # further upgrades get 503
///   max_subscriptions_per_connection: 100
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlConfig {
    /// Path of the GraphQL endpoint (default `/graphql`): `POST` for every operation, `GET` for
    /// queries, and the GraphiQL page for browsers. Assets are served under `{path}/assets/`.
    pub path: String,
    /// Path of the WebSocket endpoint for subscriptions (default `/graphql/ws`), speaking
    /// `graphql-transport-ws` and the legacy `graphql-ws` protocol.
    pub ws_path: String,
    /// Serve the GraphiQL IDE on `GET {path}` to clients that accept `text/html` (default `true`).
    pub graphiql: bool,
    /// Allow introspection queries (default `true`). Applied by [`crate::configure`].
    pub introspection: bool,
    /// The deepest selection nesting accepted (default 10). Applied by [`crate::configure`].
    pub max_depth: usize,
    /// The largest query complexity accepted (default 256; each field counts 1 unless its
    /// resolver declares otherwise). Applied by [`crate::configure`].
    pub max_complexity: usize,
    /// The largest request body (and WebSocket message) accepted; unset means
    /// `http.body_limit.max` (no limit when `http.body_limit.enabled` is off) for HTTP and 2 MiB
    /// for WebSocket messages. Bodies without `Content-Length` (chunked) are counted as they
    /// are read. The HTTP body limit of the default middleware still rejects a larger declared
    /// `Content-Length`, so this can only lower it.
    pub max_body: Option<ByteSize>,
    /// How often a WebSocket ping is sent on subscription connections to keep proxies from
    /// closing them (default `15s`; `0s` turns pings off).
    #[serde(with = "humantime_serde")]
    pub subscription_keepalive: Duration,
    /// How long a WebSocket client has to send `connection_init` before the connection is closed
    /// with code 4408 (default `10s`).
    #[serde(with = "humantime_serde")]
    pub connection_init_timeout: Duration,
    /// Open WebSocket connections at once (default 10000); a further upgrade gets `503` with
    /// `Retry-After`.
    pub max_ws_connections: usize,
    /// Operations (subscriptions) running at once on one WebSocket connection (default 100); a
    /// further `subscribe` gets an `error` message with code `TOO_MANY_SUBSCRIPTIONS` and the
    /// connection stays open.
    pub max_subscriptions_per_connection: usize,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            path: "/graphql".to_owned(),
            ws_path: "/graphql/ws".to_owned(),
            graphiql: true,
            introspection: true,
            max_depth: 10,
            max_complexity: 256,
            max_body: None,
            subscription_keepalive: Duration::from_secs(15),
            connection_init_timeout: Duration::from_secs(10),
            max_ws_connections: 10_000,
            max_subscriptions_per_connection: 100,
        }
    }
}

impl GraphqlConfig {
    /// The configuration key of this section.
    pub const SECTION: &'static str = "graphql";

    /// Reads and validates the `graphql` section of `ctx`'s configuration (and registers it so
    /// that reloads validate it too).
    ///
    /// # Errors
    ///
    /// Every problem of the section, each naming its key and where the value came from.
    pub fn from_context(ctx: &AppContext) -> Result<Self, ConfigError> {
        ctx.config().section(Self::SECTION)
    }

    /// The path under which the GraphiQL assets are served: `{path}/assets`.
    pub fn assets_path(&self) -> String {
        format!("{}/assets", self.path)
    }

    /// Whether the request only loads the GraphiQL IDE: a `GET` or `HEAD` of `path` from a
    /// browser (`Accept: text/html`) without a `query` parameter, which is answered with the page
    /// and never runs an operation, or of one of its assets. Always `false` when `graphiql` is
    /// off. `Service::graphql` exempts these requests from `auth.jwt.required`, since they
    /// carry no data and a browser cannot attach a token to them; the queries the IDE then sends
    /// carry the headers typed in its headers editor.
    pub fn is_graphiql_request(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        if !self.graphiql || (method != Method::GET && method != Method::HEAD) {
            return false;
        }
        let path = uri.path();
        if path == self.path {
            return crate::http::asks_for_page(headers, uri.query());
        }
        path.strip_prefix(self.path.as_str())
            .and_then(|rest| rest.strip_prefix("/assets/"))
            .is_some_and(|file| !file.is_empty() && !file.contains('/') && file != "." && file != "..")
    }
}

/// Whether `path` can be mounted as an axum route made of static segments.
fn valid_route(path: &str) -> bool {
    path.len() > 1
        && path.len() <= 256
        && path.starts_with('/')
        && !path.ends_with('/')
        && !path.contains("//")
        && path.split('/').skip(1).all(|s| s != "." && s != "..")
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~'))
}

impl Validate for GraphqlConfig {
    fn validate(&self, v: &mut Validation) {
        const PATH: &str = "a path such as /graphql: `/` then letters, digits, `-`, `_`, `.` or `~`, no trailing `/`";
        v.check(valid_route(&self.path), "path", PATH);
        v.check(valid_route(&self.ws_path), "ws_path", PATH);
        v.check(self.ws_path != self.path, "ws_path", "a path other than `graphql.path`");
        let assets = format!("{}/", self.assets_path());
        v.check(
            !self.ws_path.starts_with(&assets) && self.ws_path != self.assets_path(),
            "ws_path",
            format!("a path outside `{}`, where the GraphiQL assets are served", self.assets_path()),
        );
        v.check(self.max_depth >= 1, "max_depth", "a depth of at least 1");
        v.check(self.max_complexity >= 1, "max_complexity", "a complexity of at least 1");
        if let Some(max) = self.max_body {
            v.check(max.bytes() > 0, "max_body", "a size greater than 0, such as 1MiB");
        }
        v.check(
            self.subscription_keepalive.is_zero() || self.subscription_keepalive >= Duration::from_secs(1),
            "subscription_keepalive",
            "a duration of at least 1s, or 0s to turn keep-alive pings off",
        );
        v.check(
            self.connection_init_timeout >= Duration::from_millis(100)
                && self.connection_init_timeout <= Duration::from_secs(300),
            "connection_init_timeout",
            "a duration between 100ms and 5m",
        );
        v.check(self.max_ws_connections > 0, "max_ws_connections", "a number greater than 0");
        v.check(
            self.max_subscriptions_per_connection > 0,
            "max_subscriptions_per_connection",
            "a number greater than 0",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use microframework_core::Config;

    fn parse(yaml: &str) -> Result<GraphqlConfig, ConfigError> {
        Config::from_yaml(yaml).unwrap().section("graphql")
    }

    #[test]
    fn defaults() {
        let cfg = parse("{}").unwrap();
        assert_eq!(cfg, GraphqlConfig::default());
        assert_eq!(cfg.assets_path(), "/graphql/assets");
    }

    #[test]
    fn graphiql_requests_are_the_page_and_its_assets_only() {
        let cfg = GraphqlConfig::default();
        let html = {
            let mut h = HeaderMap::new();
            h.insert("accept", "text/html,application/xhtml+xml,*/*;q=0.8".parse().unwrap());
            h
        };
        let json = {
            let mut h = HeaderMap::new();
            h.insert("accept", "application/json".parse().unwrap());
            h
        };
        let is = |method: Method, uri: &str, headers: &HeaderMap| {
            cfg.is_graphiql_request(&method, &uri.parse::<Uri>().unwrap(), headers)
        };
        assert!(is(Method::GET, "/graphql", &html));
        assert!(is(Method::HEAD, "/graphql", &html));
        assert!(is(Method::GET, "/graphql?theme=dark", &html));
        assert!(is(Method::GET, "/graphql/assets/graphiql.min.js", &HeaderMap::new()));
        assert!(is(Method::GET, "/graphql/assets/graphiql.min.css?v=3.9.0", &HeaderMap::new()));

        // Anything that could run an operation, or is not GraphiQL's, is not.
        assert!(!is(Method::GET, "/graphql?query=%7Bme%7D", &html));
        assert!(!is(Method::GET, "/graphql?x=1&query=%7Bme%7D", &html));
        assert!(!is(Method::GET, "/graphql", &json));
        assert!(!is(Method::GET, "/graphql", &HeaderMap::new()));
        assert!(!is(Method::POST, "/graphql", &html));
        assert!(!is(Method::POST, "/graphql/assets/graphiql.min.js", &html));
        for other in [
            "/graphql/",
            "/graphqlx",
            "/graphql/ws",
            "/graphql/assets",
            "/graphql/assets/",
            "/graphql/assets/a/b",
            "/graphql/assets/..",
            "/other",
        ] {
            assert!(!is(Method::GET, other, &html), "{other}");
        }

        let off = GraphqlConfig { graphiql: false, ..GraphqlConfig::default() };
        assert!(!off.is_graphiql_request(&Method::GET, &"/graphql".parse().unwrap(), &html));
        assert!(!off.is_graphiql_request(&Method::GET, &"/graphql/assets/graphiql.min.js".parse().unwrap(), &html));
    }

    #[test]
    fn reads_every_field() {
        let cfg = parse(
            "graphql:\n  path: /api/gql\n  ws_path: /api/gql-ws\n  graphiql: false\n  introspection: false\n  \
             max_depth: 5\n  max_complexity: 50\n  max_body: 64KiB\n  subscription_keepalive: 0s\n  \
             connection_init_timeout: 3s\n",
        )
        .unwrap();
        assert_eq!(cfg.path, "/api/gql");
        assert_eq!(cfg.max_body, Some(ByteSize::kib(64)));
        assert!(cfg.subscription_keepalive.is_zero());
        assert_eq!(cfg.connection_init_timeout, Duration::from_secs(3));
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let err = parse(
            "graphql:\n  path: graphql/\n  ws_path: /graphql/{x}\n  max_depth: 0\n  max_complexity: 0\n  \
             max_body: 0\n  subscription_keepalive: 10ms\n  connection_init_timeout: 1h\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
        for key in [
            "graphql.path",
            "graphql.ws_path",
            "graphql.max_depth",
            "graphql.max_complexity",
            "graphql.max_body",
            "graphql.subscription_keepalive",
            "graphql.connection_init_timeout",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        let err = parse("graphql:\n  pathh: /x\n").unwrap_err();
        assert_eq!(err.problems()[0].key, "graphql.pathh");
    }

    #[test]
    fn ws_path_must_differ_from_path_and_assets() {
        assert!(parse("graphql:\n  ws_path: /graphql\n").is_err());
        assert!(parse("graphql:\n  ws_path: /graphql/assets/ws\n").is_err());
        assert!(parse("graphql:\n  ws_path: /graphql/assets\n").is_err());
        assert!(parse("graphql:\n  path: /a/../b\n").is_err());
        assert!(parse("graphql:\n  ws_path: /subscriptions\n").is_ok());
    }
}

//! What to generate: service name, type, integrations, where the framework comes from.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use heck::{ToKebabCase, ToPascalCase, ToSnakeCase, ToTitleCase};
use serde::{Deserialize, Serialize};

use crate::GenError;

/// A service type. Only the types whose templates exist can be generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceType {
    /// REST API: CRUD resource through handlers, services, repositories and models.
    Rest,
    /// GraphQL API.
    Graphql,
    /// gRPC service.
    Grpc,
    /// WebSocket service.
    Websocket,
    /// Event-sourced service.
    Event,
    /// Scheduled jobs.
    Scheduled,
    /// Queue worker.
    Worker,
    /// API gateway.
    Gateway,
    /// Reverse proxy.
    Proxy,
}

impl ServiceType {
    /// Every type, in documentation order.
    pub const ALL: [ServiceType; 9] = [
        Self::Rest,
        Self::Graphql,
        Self::Grpc,
        Self::Websocket,
        Self::Event,
        Self::Scheduled,
        Self::Worker,
        Self::Gateway,
        Self::Proxy,
    ];

    /// The flag value (`rest`, `grpc`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rest => "rest",
            Self::Graphql => "graphql",
            Self::Grpc => "grpc",
            Self::Websocket => "websocket",
            Self::Event => "event",
            Self::Scheduled => "scheduled",
            Self::Worker => "worker",
            Self::Gateway => "gateway",
            Self::Proxy => "proxy",
        }
    }

    /// What the generated service does.
    pub fn description(self) -> &'static str {
        match self {
            Self::Rest => {
                "REST API: a CRUD resource through handlers, services, repositories and models, with OpenAPI docs"
            }
            Self::Graphql => {
                "GraphQL API: the CRUD resource as queries, mutations and a subscription, with DataLoader batching"
            }
            Self::Grpc => {
                "gRPC service: a CRUD resource over protobuf with unary and streaming methods, health and reflection"
            }
            Self::Websocket => {
                "WebSocket chat/notification service: rooms, broadcast, history, heartbeats and backpressure"
            }
            Self::Event => "event-sourced service with command handlers, projections and replay",
            Self::Scheduled => "cron jobs with retries and a job-management API",
            Self::Worker => "background jobs from a queue with retries, backoff and dead-letter",
            Self::Gateway => "API gateway routing to upstreams with load balancing, auth and rate limits",
            Self::Proxy => "reverse proxy with response caching and health-checked upstreams",
        }
    }

    /// The template layers of this type, in override order.
    pub fn layers(self) -> Vec<&'static str> {
        match self {
            Self::Rest | Self::Grpc | Self::Graphql => vec!["common", "crud", self.as_str()],
            _ => vec!["common", self.as_str()],
        }
    }

    /// Whether this generator version can produce it.
    pub fn is_available(self) -> bool {
        matches!(self, Self::Rest | Self::Websocket | Self::Grpc | Self::Graphql)
    }

    /// The types that can be generated now.
    pub fn available() -> Vec<ServiceType> {
        Self::ALL.into_iter().filter(|t| t.is_available()).collect()
    }
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceType {
    type Err = GenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| GenError::UnknownType(s.to_owned()))
    }
}

/// The database of the generated service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseKind {
    /// SQLite, embedded: a file under `data/` (the default).
    #[default]
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
    /// No database.
    None,
}

impl DatabaseKind {
    /// Every kind.
    pub const ALL: [DatabaseKind; 4] = [Self::Sqlite, Self::Postgres, Self::Mysql, Self::None];

    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::None => "none",
        }
    }
}

/// Authentication of the generated service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// JWT bearer tokens protect the write routes.
    Jwt,
    /// No authentication (the default).
    #[default]
    None,
}

impl AuthKind {
    /// Every kind.
    pub const ALL: [AuthKind; 2] = [Self::Jwt, Self::None];

    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::None => "none",
        }
    }
}

/// Where the generated service gets the framework from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameworkSource {
    /// A source checkout, by absolute path (development of the framework, air-gapped builds).
    Path(PathBuf),
    /// A registry version requirement, such as `0.1`.
    Version(String),
}

/// Everything the generator needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// The service name (kebab-case).
    pub name: String,
    /// The service type.
    pub service_type: ServiceType,
    /// The database.
    pub database: DatabaseKind,
    /// Authentication.
    pub auth: AuthKind,
    /// The CRUD resource, plural snake_case (`users`).
    pub resource: String,
    /// The framework dependency.
    pub framework: FrameworkSource,
    /// CRUD resources added by `microframework generate resource` (REST), in the order added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ExtraResource>,
    /// Handlers added by `microframework generate handler` (REST), in the order added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handlers: Vec<String>,
    /// gRPC services added by `microframework generate protobuf` (gRPC), in the order added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protobufs: Vec<String>,
    /// GraphQL types added by `microframework generate graphql` (GraphQL), in the order added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub graphql_types: Vec<String>,
    /// The provider of each other feature layer (`messaging = "nats"`): features that add to a
    /// service without changing the code its type generates, so they need no option of their own.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub features: std::collections::BTreeMap<String, String>,
}

/// A CRUD resource added after `new` by `microframework generate resource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraResource {
    /// Its name, plural snake_case (`orders`).
    pub name: String,
    /// The version of its migration (`0002_create_orders.sql`).
    pub migration: u32,
}

/// Names that generated modules and test targets take, which resources and handlers cannot.
const TAKEN: &[&str] = &[
    "generated",
    "handlers",
    "middleware",
    "models",
    "repositories",
    "services",
    "grpc",
    "proto",
    "graphql",
    "schema",
    "query",
    "mutation",
    "subscription",
    "types",
    "loaders",
    "e2e",
    "integration",
    "main",
    "lib",
];

impl Options {
    /// Options for `name` with the defaults: REST, SQLite, no auth, `users`.
    pub fn new(name: impl Into<String>, framework: FrameworkSource) -> Self {
        Self {
            name: name.into(),
            service_type: ServiceType::Rest,
            database: DatabaseKind::Sqlite,
            auth: AuthKind::None,
            resource: "users".to_owned(),
            framework,
            resources: Vec::new(),
            handlers: Vec::new(),
            protobufs: Vec::new(),
            graphql_types: Vec::new(),
            features: std::collections::BTreeMap::new(),
        }
    }

    /// Checks every option; errors explain what is allowed.
    pub fn validate(&self) -> Result<(), GenError> {
        validate_name(&self.name)?;
        validate_resource(&self.resource)?;
        if (!self.resources.is_empty() || !self.handlers.is_empty()) && self.service_type != ServiceType::Rest {
            return Err(GenError::Generate(format!(
                "`generate resource` and `generate handler` work on REST services, and this is a {} service",
                self.service_type
            )));
        }
        if !self.protobufs.is_empty() && self.service_type != ServiceType::Grpc {
            return Err(GenError::Generate(format!(
                "`generate protobuf` works on gRPC services, and this is a {} service",
                self.service_type
            )));
        }
        if !self.graphql_types.is_empty() && self.service_type != ServiceType::Graphql {
            return Err(GenError::Generate(format!(
                "`generate graphql` works on GraphQL services, and this is a {} service",
                self.service_type
            )));
        }
        let mut modules = vec![self.resource.clone()];
        for r in &self.resources {
            validate_resource(&r.name)?;
            modules.push(r.name.clone());
        }
        for h in &self.handlers {
            validate_resource(h).map_err(|_| {
                GenError::Generate(format!(
                    "invalid handler name `{h}`: use lowercase letters, digits and `_` (2 to 40 characters, starting with a letter), such as `status` or `reports`"
                ))
            })?;
            modules.push(h.clone());
        }
        for p in &self.protobufs {
            validate_resource(p).map_err(|_| {
                GenError::Generate(format!(
                    "invalid protobuf service name `{p}`: use lowercase letters, digits and `_` (2 to 40 characters, starting with a letter), such as `billing`"
                ))
            })?;
            modules.push(p.clone());
        }
        let one = ResourceNames::new(&self.resource).singular;
        for t in &self.graphql_types {
            validate_resource(t).map_err(|_| {
                GenError::Generate(format!(
                    "invalid GraphQL type name `{t}`: use lowercase letters, digits and `_` (2 to 40 characters, starting with a letter), such as `invoice`"
                ))
            })?;
            if *t == one || t.starts_with(&format!("{}_", self.resource)) {
                return Err(GenError::Generate(format!(
                    "the GraphQL type `{t}` would clash with the types and queries of the `{}` resource; choose another name",
                    self.resource
                )));
            }
            modules.push(t.clone());
        }
        for (i, m) in modules.iter().enumerate() {
            if TAKEN.contains(&m.as_str()) {
                return Err(GenError::Generate(format!(
                    "`{m}` is the name of one of the service's own modules or test targets; choose another name"
                )));
            }
            if modules[..i].contains(m) {
                return Err(GenError::Generate(format!("the service already has a resource or handler called `{m}`")));
            }
        }
        if !self.service_type.is_available() {
            return Err(GenError::TypeNotAvailable(self.service_type));
        }
        // Relative paths are relative to the generated service and checked by its build.
        if let FrameworkSource::Path(p) = &self.framework
            && p.is_absolute()
            && !p.join("crates/microframework/Cargo.toml").is_file()
        {
            return Err(GenError::InvalidFrameworkPath(format!(
                "`{}` is not a MicroFramework checkout (no crates/microframework/Cargo.toml)",
                p.display()
            )));
        }
        Ok(())
    }
}

const RESERVED: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "macro",
    "override",
    "priv",
    "try",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "std",
    "core",
    "alloc",
    "proc_macro",
    "test",
    "build",
    "microframework",
];

/// What a service name may be.
pub const NAME_RULES: &str = "lowercase letters, digits and `-`, 3 to 50 characters, starting with a letter, \
not ending with `-`, without `--`, and not a Rust keyword or reserved crate name (such as `test` or `std`)";

/// Checks a service name against [`NAME_RULES`].
pub fn validate_name(name: &str) -> Result<(), GenError> {
    let problem = if name.len() < 3 || name.len() > 50 {
        let n = name.chars().count();
        Some(format!("it is {n} character{} long", if n == 1 { "" } else { "s" }))
    } else if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        Some(if c.is_ascii_uppercase() {
            format!("it contains the uppercase letter `{c}` (try `{}`)", name.to_kebab_case())
        } else if c.is_whitespace() {
            "it contains a space".to_owned()
        } else {
            format!("it contains `{c}`")
        })
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("it does not start with a letter".to_owned())
    } else if name.ends_with('-') {
        Some("it ends with `-`".to_owned())
    } else if name.contains("--") {
        Some("it contains `--`".to_owned())
    } else if RESERVED.contains(&name.to_snake_case().as_str()) {
        Some("it is a Rust keyword or a reserved crate name".to_owned())
    } else {
        None
    };
    match problem {
        Some(why) => Err(GenError::InvalidName { name: name.to_owned(), why }),
        None => Ok(()),
    }
}

fn validate_resource(resource: &str) -> Result<(), GenError> {
    let ok = (2..=40).contains(&resource.len())
        && resource.starts_with(|c: char| c.is_ascii_lowercase())
        && resource.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !resource.ends_with('_')
        && !RESERVED.contains(&resource)
        && !RESERVED.contains(&singular(resource).as_str());
    if ok { Ok(()) } else { Err(GenError::InvalidResource(resource.to_owned())) }
}

/// The singular of a plural resource name (`users` → `user`, `categories` → `category`).
pub fn singular(plural: &str) -> String {
    if let Some(stem) = plural.strip_suffix("ies") {
        format!("{stem}y")
    } else if plural.ends_with("sses")
        || plural.ends_with("xes")
        || plural.ends_with("ches")
        || plural.ends_with("shes")
    {
        plural[..plural.len() - 2].to_owned()
    } else if let Some(stem) = plural.strip_suffix('s') {
        if stem.ends_with('s') { plural.to_owned() } else { stem.to_owned() }
    } else {
        plural.to_owned()
    }
}

/// Names derived from the options, as the templates see them.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ResourceNames {
    pub(crate) plural: String,
    pub(crate) singular: String,
    pub(crate) pascal: String,
    pub(crate) plural_pascal: String,
    pub(crate) table: String,
    pub(crate) title: String,
}

impl ResourceNames {
    pub(crate) fn new(plural: &str) -> Self {
        let singular = singular(plural);
        let mut singular_fixed = singular.clone();
        if singular_fixed == plural {
            singular_fixed = format!("{plural}_item");
        }
        Self {
            plural: plural.to_owned(),
            pascal: singular_fixed.to_pascal_case(),
            plural_pascal: plural.to_pascal_case(),
            singular: singular_fixed,
            table: plural.to_owned(),
            title: plural.to_title_case(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["user-service", "abc", "a1-b2", "orders2"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("ab", "2 characters"),
            ("User-Service", "uppercase letter `U`"),
            ("user service", "space"),
            ("1service", "start with a letter"),
            ("service-", "ends with `-`"),
            ("my--svc", "`--`"),
            ("type", "keyword"),
            ("test", "reserved"),
            ("user_service", "contains `_`"),
        ] {
            let err = validate_name(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("lowercase letters, digits and `-`"), "{err}");
        }
        assert!(validate_name(&"a".repeat(51)).is_err());
    }

    #[test]
    fn singulars() {
        assert_eq!(singular("users"), "user");
        assert_eq!(singular("categories"), "category");
        assert_eq!(singular("boxes"), "box");
        assert_eq!(singular("addresses"), "address");
        assert_eq!(singular("news"), "new");
        assert_eq!(ResourceNames::new("blog_posts").pascal, "BlogPost");
        assert_eq!(ResourceNames::new("staff").singular, "staff_item");
    }
}

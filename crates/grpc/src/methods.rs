//! The registered services and their methods, from file descriptor sets: bounded metric labels
//! and per-method metric handles.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use metrics::{Counter, Histogram};
use prost::Message;
use prost_types::FileDescriptorSet;
use tonic::Code;

use crate::metrics::names;
use crate::status::code_name;

/// The label of a service or method that is not registered.
pub const UNKNOWN: &str = "unknown";

/// The kind of a method (the `grpc_type` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MethodKind {
    Unary,
    ClientStream,
    ServerStream,
    BidiStream,
    Unknown,
}

impl MethodKind {
    fn from_flags(client_streaming: bool, server_streaming: bool) -> Self {
        match (client_streaming, server_streaming) {
            (false, false) => Self::Unary,
            (true, false) => Self::ClientStream,
            (false, true) => Self::ServerStream,
            (true, true) => Self::BidiStream,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::ClientStream => "client_stream",
            Self::ServerStream => "server_stream",
            Self::BidiStream => "bidi_stream",
            Self::Unknown => UNKNOWN,
        }
    }
}

/// The labels of one method, and its metric handles (created on first use, so that they bind to
/// the recorder installed by then).
#[derive(Debug)]
pub(crate) struct Series {
    pub(crate) service: Arc<str>,
    pub(crate) method: Arc<str>,
    kind: MethodKind,
    started: OnceLock<Counter>,
    seconds: OnceLock<Histogram>,
    handled: [OnceLock<Counter>; 17],
}

impl Series {
    fn new(service: &str, method: &str, kind: MethodKind) -> Self {
        Self {
            service: service.into(),
            method: method.into(),
            kind,
            started: OnceLock::new(),
            seconds: OnceLock::new(),
            handled: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn labels(&self) -> [(&'static str, String); 3] {
        [
            ("grpc_service", self.service.to_string()),
            ("grpc_method", self.method.to_string()),
            ("grpc_type", self.kind.label().to_owned()),
        ]
    }

    pub(crate) fn started(&self) -> &Counter {
        self.started.get_or_init(|| metrics::counter!(names::GRPC_STARTED, &self.labels()))
    }

    pub(crate) fn seconds(&self) -> &Histogram {
        self.seconds.get_or_init(|| metrics::histogram!(names::GRPC_HANDLING_SECONDS, &self.labels()))
    }

    pub(crate) fn handled(&self, code: Code) -> &Counter {
        let idx = (code as usize).min(16);
        self.handled[idx].get_or_init(|| {
            let [a, b, c] = self.labels();
            metrics::counter!(names::GRPC_HANDLED, &[a, b, c, ("grpc_code", code_name(code).to_owned())])
        })
    }
}

#[derive(Debug, Default)]
struct ServiceEntry {
    /// The series of calls to methods this service does not declare.
    unknown: usize,
    methods: HashMap<Box<str>, usize>,
}

/// The registered services with their methods. Index 0 is the `unknown`/`unknown` series.
#[derive(Debug)]
pub(crate) struct MethodTable {
    services: HashMap<Box<str>, ServiceEntry>,
    pub(crate) series: Vec<Series>,
}

/// A service name with the methods declared for it in a descriptor.
pub(crate) type Declared = HashMap<String, Vec<(String, MethodKind)>>;

/// The services declared in encoded file descriptor sets, by full name.
///
/// # Errors
///
/// A message naming the set that does not decode.
pub(crate) fn declared(sets: &[&[u8]]) -> Result<Declared, String> {
    let mut out = Declared::new();
    for (i, bytes) in sets.iter().enumerate() {
        let set = FileDescriptorSet::decode(*bytes)
            .map_err(|e| format!("file descriptor set #{} is not a valid encoded FileDescriptorSet: {e}", i + 1))?;
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let name = service.name.unwrap_or_default();
                let full = if package.is_empty() { name } else { format!("{package}.{name}") };
                let methods = out.entry(full).or_default();
                for m in service.method {
                    let kind = MethodKind::from_flags(
                        m.client_streaming.unwrap_or_default(),
                        m.server_streaming.unwrap_or_default(),
                    );
                    let name = m.name.unwrap_or_default();
                    if !methods.iter().any(|(n, _)| *n == name) {
                        methods.push((name, kind));
                    }
                }
            }
        }
    }
    Ok(out)
}

impl MethodTable {
    /// The table of `services` (registered names), with methods from `declared`.
    pub(crate) fn new(services: &[&str], declared: &Declared) -> Self {
        let mut table =
            Self { services: HashMap::new(), series: vec![Series::new(UNKNOWN, UNKNOWN, MethodKind::Unknown)] };
        for &service in services {
            let unknown = table.push(Series::new(service, UNKNOWN, MethodKind::Unknown));
            let mut entry = ServiceEntry { unknown, methods: HashMap::new() };
            for (method, kind) in declared.get(service).map(Vec::as_slice).unwrap_or_default() {
                let idx = table.push(Series::new(service, method, *kind));
                entry.methods.insert(method.as_str().into(), idx);
            }
            table.services.insert(service.into(), entry);
        }
        table
    }

    fn push(&mut self, series: Series) -> usize {
        self.series.push(series);
        self.series.len() - 1
    }

    /// The series of a request path (`/package.Service/Method`).
    pub(crate) fn resolve(&self, path: &str) -> usize {
        let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
            return 0;
        };
        match self.services.get(service) {
            Some(entry) => entry.methods.get(method).copied().unwrap_or(entry.unknown),
            None => 0,
        }
    }

    /// Whether `service` declares methods in a descriptor.
    pub(crate) fn has_methods(&self, service: &str) -> bool {
        self.services.get(service).is_some_and(|e| !e.methods.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        let declared = declared(&[tonic_health::pb::FILE_DESCRIPTOR_SET]).unwrap();
        let table = MethodTable::new(&["grpc.health.v1.Health", "other.Svc"], &declared);
        let label = |path: &str| {
            let s = &table.series[table.resolve(path)];
            (s.service.to_string(), s.method.to_string(), s.kind.label())
        };
        assert_eq!(label("/grpc.health.v1.Health/Check"), ("grpc.health.v1.Health".into(), "Check".into(), "unary"));
        assert_eq!(
            label("/grpc.health.v1.Health/Watch"),
            ("grpc.health.v1.Health".into(), "Watch".into(), "server_stream")
        );
        assert_eq!(label("/grpc.health.v1.Health/Nope"), ("grpc.health.v1.Health".into(), UNKNOWN.into(), UNKNOWN));
        assert_eq!(label("/other.Svc/Anything"), ("other.Svc".into(), UNKNOWN.into(), UNKNOWN));
        assert_eq!(label("/random/path"), (UNKNOWN.into(), UNKNOWN.into(), UNKNOWN));
        assert_eq!(label("/"), (UNKNOWN.into(), UNKNOWN.into(), UNKNOWN));
        assert_eq!(label(""), (UNKNOWN.into(), UNKNOWN.into(), UNKNOWN));
        assert!(table.has_methods("grpc.health.v1.Health"));
        assert!(!table.has_methods("other.Svc"));
    }

    #[test]
    fn bad_descriptor_sets_are_reported() {
        assert!(declared(&[b"\xff\xff\xff"]).unwrap_err().contains("#1"));
    }
}

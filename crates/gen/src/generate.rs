//! `microframework generate resource|handler|protobuf|graphql NAME`: new code in an existing
//! REST, gRPC or GraphQL service.
//!
//! The new files (a CRUD resource through handlers → services → repositories → models with its
//! migration and integration test; or a documented handler with its test) are created once and
//! are the user's. They are registered through the generated wiring: `src/generated/mod.rs`
//! declares their modules and adds their routes, and the service's own `mod.rs` files re-export
//! `crate::generated::{models, repositories, services, handlers}`, so no user file is edited.
//! The manifest records them in the options, so `update` and `add` keep them.

use std::path::Path;

use crate::add::{AddAction, AddPlan, plan_change, read_current_service};
use crate::error::GenError;
use crate::options::{DatabaseKind, ExtraResource, ServiceType};

/// What `generate` can add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerateKind {
    /// A CRUD resource.
    Resource,
    /// A handler.
    Handler,
    /// A gRPC service from a new `.proto`.
    Protobuf,
    /// A GraphQL type with its query.
    Graphql,
}

impl GenerateKind {
    /// Its name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resource => "resource",
            Self::Handler => "handler",
            Self::Protobuf => "protobuf",
            Self::Graphql => "graphql",
        }
    }
}

/// The next free migration version of the service: one past the highest in its migrations
/// directory and in the resources already added.
fn next_migration(dir: &Path, database: DatabaseKind, taken: &[ExtraResource]) -> u32 {
    let mut max = taken.iter().map(|r| r.migration).max().unwrap_or(1);
    if database != DatabaseKind::None
        && let Ok(entries) = std::fs::read_dir(dir.join("migrations").join(database.as_str()))
    {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(v) = digits.parse::<u32>() {
                max = max.max(v);
            }
        }
    }
    max + 1
}

/// Works out what `generate KIND NAME` would write in the service at `dir`. Writes nothing.
///
/// # Errors
///
/// The kind is not available for this service's type, the name is invalid or taken, a file it
/// would create exists already and is not the generator's, or the service cannot be read.
pub fn plan_generate(dir: &Path, kind: GenerateKind, name: &str, force: bool) -> Result<AddPlan, GenError> {
    let manifest = read_current_service(dir)?;
    let options = &manifest.options;
    let mut target = options.clone();
    match kind {
        GenerateKind::Resource | GenerateKind::Handler if options.service_type != ServiceType::Rest => {
            return Err(GenError::Generate(format!(
                "`generate {}` works on REST services in this version, and this is a {} service. Nothing was written",
                kind.as_str(),
                options.service_type
            )));
        }
        GenerateKind::Protobuf if options.service_type != ServiceType::Grpc => {
            return Err(GenError::Generate(format!(
                "`generate protobuf` works on gRPC services, and this is a {} service. Nothing was written",
                options.service_type
            )));
        }
        GenerateKind::Graphql if options.service_type != ServiceType::Graphql => {
            return Err(GenError::Generate(format!(
                "`generate graphql` works on GraphQL services, and this is a {} service. Nothing was written",
                options.service_type
            )));
        }
        GenerateKind::Graphql => {
            if options.graphql_types.iter().any(|t| t == name) {
                return Ok(AddPlan::nothing(dir, kind.as_str(), name, manifest));
            }
            target.graphql_types.push(name.to_owned());
        }
        GenerateKind::Protobuf => {
            if options.protobufs.iter().any(|p| p == name) {
                return Ok(AddPlan::nothing(dir, kind.as_str(), name, manifest));
            }
            target.protobufs.push(name.to_owned());
        }
        GenerateKind::Resource => {
            if name == options.resource || options.resources.iter().any(|r| r.name == name) {
                return Ok(AddPlan::nothing(dir, kind.as_str(), name, manifest));
            }
            let migration = next_migration(dir, options.database, &options.resources);
            target.resources.push(ExtraResource { name: name.to_owned(), migration });
        }
        GenerateKind::Handler => {
            if options.handlers.iter().any(|h| h == name) {
                return Ok(AddPlan::nothing(dir, kind.as_str(), name, manifest));
            }
            target.handlers.push(name.to_owned());
        }
    }
    target.validate()?;
    let (changes, new_manifest) = plan_change(dir, &manifest, &target, force)?;
    let theirs: Vec<String> = changes
        .iter()
        .filter(|c| c.action == AddAction::WriteNew || c.action == AddAction::Overwrite)
        .map(|c| c.path.to_string_lossy().replace('\\', "/"))
        .filter(|p| !manifest.files.contains_key(p))
        .collect();
    if !theirs.is_empty() {
        return Err(GenError::Generate(format!(
            "`generate {kind} {name}` would create {}, which already exist(s) and are not the generator's: choose another \
             name or move them away. Nothing was written",
            theirs.join(", "),
            kind = kind.as_str()
        )));
    }
    let mut plan = AddPlan::nothing(dir, kind.as_str(), name, manifest);
    plan.already_applied = false;
    plan.changes = changes;
    plan.manifest = new_manifest;
    // Services generated before the re-exports existed need them once, by hand.
    let modules: &[&str] = match kind {
        GenerateKind::Resource => &["models", "repositories", "services", "handlers"],
        GenerateKind::Handler => &["handlers"],
        GenerateKind::Protobuf => &["grpc"],
        GenerateKind::Graphql => &[],
    };
    for &module in modules {
        let file = format!("src/{module}/mod.rs");
        let line = format!("pub use crate::generated::{module}::*;");
        let text = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        if !text.contains(&line) {
            plan.notes.push(format!("add `{line}` to {file}, so that the new code is reachable as crate::{module}"));
        }
    }
    if kind == GenerateKind::Graphql {
        let schema = std::fs::read_to_string(dir.join("src/graphql/schema.rs")).unwrap_or_default();
        if !schema.contains("generated::graphql::Queries") {
            plan.notes.push(
                "the Query root in src/graphql/schema.rs must merge `crate::generated::graphql::Queries` \
                 (#[derive(MergedObject)]) to serve the new type"
                    .into(),
            );
        }
    }
    if kind == GenerateKind::Protobuf {
        let build = std::fs::read_to_string(dir.join("build.rs")).unwrap_or_default();
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap_or_default();
        if !build.contains("fn protos(") {
            plan.notes
                .push("build.rs must compile every .proto under proto/ (as a newly generated build.rs does)".into());
        }
        if !lib.contains("generated::grpc_services(") {
            plan.notes.push(
                "src/lib.rs must pass its GrpcBuilder through `generated::grpc_services(builder)` to serve the new service"
                    .into(),
            );
        }
    }
    Ok(plan)
}

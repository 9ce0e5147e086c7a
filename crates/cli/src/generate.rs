//! `microframework generate resource|handler|protobuf|graphql NAME`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use microframework_gen::{AddAction, GenError, GenerateKind, apply_add, plan_generate};

use crate::Failure;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    /// A CRUD resource: handlers → services → repositories → models, migration and tests (REST).
    Resource,
    /// A documented HTTP handler with its test (REST).
    Handler,
    /// A .proto service with its implementation, test and server wiring (gRPC).
    Protobuf,
    /// A GraphQL type with its query resolver, merged into the schema (GraphQL).
    Graphql,
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// What to generate.
    #[arg(value_enum)]
    kind: Kind,
    /// Its name: plural snake_case for a resource (`orders`), snake_case for a handler, protobuf
    /// service or GraphQL type (`status`, `billing`, `invoice`).
    #[arg(value_name = "NAME")]
    name: String,
    /// The service's root directory (the one holding .microframework.toml).
    #[arg(long, short = 'd', value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Print the diff of what would change, and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Rewrite src/generated/ even if it was edited by hand (the edits are lost).
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: GenerateArgs) -> Result<(), Failure> {
    let kind = match args.kind {
        Kind::Resource => GenerateKind::Resource,
        Kind::Handler => GenerateKind::Handler,
        Kind::Protobuf => GenerateKind::Protobuf,
        Kind::Graphql => GenerateKind::Graphql,
    };
    let plan = plan_generate(&args.dir, kind, &args.name, args.force).map_err(|e| match e {
        GenError::Io { .. } | GenError::Template { .. } => Failure::failed(e.to_string()),
        e => Failure::usage(e.to_string()),
    })?;
    if plan.already_applied {
        out!("nothing to do: the service has a {} called `{}` already", plan.feature, plan.provider);
        return Ok(());
    }
    if args.dry_run {
        for change in &plan.changes {
            out!("{}", change.diff.trim_end());
        }
        out!("");
    }
    for change in &plan.changes {
        let note = match change.action {
            AddAction::WriteNew => format!(
                " (you edited it: {}; the new version is in {})",
                change.reason.as_deref().unwrap_or("it cannot be merged"),
                change.written_path().display()
            ),
            AddAction::Overwrite => " (edited by hand; --force replaces it)".to_owned(),
            _ => String::new(),
        };
        out!("  {:<9} {}{note}", change.action.verb(), change.path.display());
    }
    out!("  record    {} {} in .microframework.toml", plan.feature, plan.provider);
    for note in &plan.notes {
        out!("note: {note}");
    }
    if args.dry_run {
        out!("dry run: nothing written");
        return Ok(());
    }
    let written = apply_add(&plan).map_err(|e| Failure::failed(e.to_string()))?;
    out!("generated {} `{}` in {}: {} file(s) written", plan.feature, plan.provider, args.dir.display(), written.len());
    Ok(())
}

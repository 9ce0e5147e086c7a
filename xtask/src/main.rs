//! `cargo xtask`: development and CI tasks for the MicroFramework workspace.
//!
//! ```text
//! cargo xtask bench http [--duration 10s] [--connections 64] [--threads 1] [--rounds 3]
//!                        [--write docs/benchmarks.md] [--check-target]
//! cargo xtask bench gen  [--runs 10] [--no-release] [--write docs/benchmarks.md]
//! ```

mod bench;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Development and CI tasks for MicroFramework.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmarks (release builds, compared against a bare baseline).
    Bench {
        #[command(subcommand)]
        kind: BenchKind,
    },
}

#[derive(Debug, Subcommand)]
enum BenchKind {
    /// HTTP throughput/latency, start-up time and memory of MicroFramework vs a bare axum server.
    Http(bench::http::HttpArgs),
    /// Time of `microframework new`, build times and binary size of a generated service.
    Gen(bench::generator::GenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench { kind: BenchKind::Http(args) } => bench::http::run(&args),
        Command::Bench { kind: BenchKind::Gen(args) } => bench::generator::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this package's directory).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(PathBuf::from).unwrap_or(manifest_dir)
}

//! `cargo xtask`: development and CI tasks for the MicroFramework workspace.
//!
//! ```text
//! cargo xtask bench http [--duration 10s] [--connections 64] [--threads 1] [--rounds 3]
//!                        [--write docs/benchmarks.md] [--check-target]
//! cargo xtask bench grpc [--duration 10s] [--warmup 2s] [--concurrency 64] [--connections 4]
//!                        [--client-threads 1] [--rounds 3] [--no-generated] [--write docs/benchmarks.md]
//! cargo xtask bench ws   [--clients 100,1000,5000] [--size 128,1024] [--deliveries 5000000]
//!                        [--rounds 3] [--no-baseline] [--write docs/benchmarks.md]
//! cargo xtask bench gen  [--runs 10] [--no-release] [--write docs/benchmarks.md]
//! cargo xtask bench layers [--rounds 9] [--requests 50000] [--chunk 1000] [--warmup 5000]
//!                          [--write docs/benchmarks.md]
//! cargo xtask bench profile [--requests 2000] [--warmup 200] [--server-requests 2000] [--server-rounds 3]
//!                           [--syscall-requests 20000] [--connections 4] [--top 15] [--no-servers]
//!                           [--write docs/benchmarks.md]
//! cargo xtask bench size [--runs 10] [--load 30s] [--connections 32] [--write docs/benchmarks.md]
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
    /// gRPC calls/s, latency, start-up time and memory of MicroFramework vs a bare tonic server.
    Grpc(bench::grpc::GrpcArgs),
    /// WebSocket fan-out (delivered messages/s, memory per connection) of the microframework-ws
    /// hub vs a bare tokio-tungstenite server.
    Ws(bench::ws::WsArgs),
    /// Time of `microframework new`, build times and binary size of a generated service.
    Gen(bench::generator::GenArgs),
    /// Our HTTP middleware layers vs tower-http's for the same concern (timeout, catch-panic,
    /// body limit, request id), in-process, ns/request.
    Layers(bench::layers::LayersArgs),
    /// Where a request's cost goes: instructions (callgrind) and allocations per request for each
    /// default middleware alone and the whole stack, in-process; instructions and syscalls per
    /// request of the whole servers.
    Profile(bench::profile::ProfileArgs),
    /// Binary size, start-up to ready, idle and loaded memory of a default generated service, next
    /// to bare axum.
    Size(bench::size::SizeArgs),
    /// The load generator `bench grpc` runs (from a release build of xtask).
    #[command(hide = true)]
    GrpcLoad(bench::grpc_load::LoadArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench { kind: BenchKind::Http(args) } => bench::http::run(&args),
        Command::Bench { kind: BenchKind::Grpc(args) } => bench::grpc::run(&args),
        Command::Bench { kind: BenchKind::Ws(args) } => bench::ws::run(&args),
        Command::Bench { kind: BenchKind::Gen(args) } => bench::generator::run(&args),
        Command::Bench { kind: BenchKind::Layers(args) } => bench::layers::run(&args),
        Command::Bench { kind: BenchKind::Profile(args) } => bench::profile::run(&args),
        Command::Bench { kind: BenchKind::Size(args) } => bench::size::run(&args),
        Command::Bench { kind: BenchKind::GrpcLoad(args) } => bench::grpc_load::run(&args),
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

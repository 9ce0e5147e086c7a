//! `framework-grpc`: the `bench.v1.Greeter` service of `baseline-tonic` served by a MicroFramework
//! `Service` with the default gRPC stack: request ids, a trace span per call, RED metrics,
//! deadlines, the per-connection concurrency limit and message size limits (through
//! `with_limits!`), plus the health and reflection services. JWT is off, as it is by default.
//! `cargo xtask bench grpc` compares it with `baseline-tonic` in the same run.
//!
//! Configuration comes from the usual sources: `APP_GRPC__PORT` (gRPC listener, default 50051),
//! `APP_SERVER__PORT` (HTTP: `/health/ready`, `/metrics`), `APP_LOGGING__LEVEL`, ...

use bench_servers::greeter::{DESCRIPTOR, Greeter, GreeterServer};
use microframework::grpc::{GrpcBuilder, with_limits};
use microframework::prelude::*;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    Service::new("framework-grpc")
        .version(env!("CARGO_PKG_VERSION"))
        .grpc(|_| {
            Ok(GrpcBuilder::new()
                .add_service_with(|cfg| with_limits!(cfg, GreeterServer::new(Greeter)))
                .file_descriptor_set(DESCRIPTOR))
        })
        .run()
        .await
}

//! `baseline-tonic`: a bare tonic server with the `bench.v1.Greeter` service, the reference
//! `cargo xtask bench grpc` compares `framework-grpc` against.
//!
//! Deliberately nothing but the service: `tonic::transport::Server` with its defaults, no layers,
//! no health or reflection service, no logging. It listens on `127.0.0.1:<port>`, where the port
//! is the first argument, else `$PORT`, else 50051. SIGTERM or Ctrl-C stops it gracefully with
//! exit code 0.

use std::net::{Ipv4Addr, SocketAddr};

use bench_servers::greeter::{Greeter, GreeterServer};
use bench_servers::{port_from_args, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port = port_from_args(50051)?;
    tonic::transport::Server::builder()
        .add_service(GreeterServer::new(Greeter))
        .serve_with_shutdown(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), shutdown_signal())
        .await?;
    Ok(())
}

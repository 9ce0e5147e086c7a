//! Users Service: starts the service. Everything else lives in the library (`src/lib.rs`), so that
//! tests can start the same service in-process.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    users_service::service().run().await
}

//! users-service: a REST CRUD service on SQLite.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    users_service::service().run().await
}

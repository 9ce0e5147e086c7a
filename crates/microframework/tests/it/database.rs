//! A real PostgreSQL outage (through a proxy that cuts the connection): readiness fails,
//! requests get 503 problem+json, and the service recovers by itself.

use std::net::SocketAddr;

use microframework::axum::Router;
use microframework::axum::routing::get;
use microframework::data::{DataError, Database, Migrations};
use microframework::prelude::*;
use microframework_testing::TestApp;
use microframework_testing::db::TestDatabase;
use microframework_testing::net::FaultProxy;
use serde_json::Value;

use crate::common::eventually;

fn db_service() -> Service {
    Service::new("db-service").database(Migrations::new()).router(|ctx| {
        let db = ctx.require::<Database>()?;
        let pool = db.postgres().ok_or("PostgreSQL expected")?.clone();
        Ok(Router::new().route(
            "/answer",
            get(move || {
                let pool = pool.clone();
                async move {
                    let n: i32 = sqlx::query_scalar("SELECT 41 + 1")
                        .fetch_one(&pool)
                        .await
                        .map_err(DataError::from)
                        .map_err(Error::from)?;
                    Ok::<_, ApiError>(n.to_string())
                }
            }),
        ))
    })
}

#[tokio::test]
async fn postgres_outage_fails_readiness_answers_503_and_recovers() {
    let Some(db) = TestDatabase::postgres().await else { return };
    let mut url = url::Url::parse(db.url()).unwrap();
    let target: SocketAddr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432)).parse().unwrap();
    let proxy = FaultProxy::start(target).await.unwrap();
    url.set_port(Some(proxy.addr().port())).unwrap();

    let app = TestApp::builder(db_service())
        .database_url(url.as_str())
        .yaml("database:\n  migrate: false\n  acquire_timeout: 1s\n  health_timeout: 1s\n  max_connections: 4\n")
        .spawn()
        .await;
    assert_eq!(app.get("/answer").await.text().await.unwrap(), "42");
    assert_eq!(app.get("/health/ready").await.status(), 200);

    proxy.cut();
    eventually("readiness to fail", || async { app.get("/health/ready").await.status() == 503 }).await;
    let body: Value = app.get("/health/ready").await.json().await.unwrap();
    let check = body["checks"].as_array().unwrap().iter().find(|c| c["name"] == "database").unwrap().clone();
    assert_eq!(check["status"], "down");
    let res = app.get("/answer").await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "unavailable");
    assert!(!problem.to_string().contains("postgres://"), "no connection details leak: {problem}");
    assert_eq!(app.get("/health/live").await.status(), 200, "a database outage does not fail liveness");

    proxy.restore();
    eventually("readiness to recover", || async { app.get("/health/ready").await.status() == 200 }).await;
    eventually("queries to recover", || async { app.get("/answer").await.status() == 200 }).await;

    app.shutdown().await;
    db.drop_database().await;
}

#[tokio::test]
async fn unreachable_database_at_start_up_is_a_clear_error() {
    let err = TestApp::builder(db_service())
        .database_url("postgres://app:hunter2@127.0.0.1:1/users")
        .yaml("database:\n  connect_timeout: 2s\n")
        .try_spawn()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("component `database` failed to start"), "{text}");
    assert!(text.contains("PostgreSQL") && text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("hunter2"), "the password is redacted: {text}");
}

/// `--check-dependencies` runs the database plugin's probe and nothing else: it exits 0 while
/// another process holds the service's port (so it never listened), 1 for a database that does
/// not answer, 2 for an invalid section.
#[tokio::test]
async fn check_dependencies_probes_the_database_and_starts_nothing() {
    use std::process::ExitCode;

    use microframework::config::ConfigSources;

    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data/check.db");
    let sources = |url: &str| {
        ConfigSources::new().set("server.host", "127.0.0.1").set("server.port", &port).set("database.url", url)
    };
    let check = |sources: ConfigSources| {
        Service::new("svc")
            .database(Migrations::new())
            .config_sources(sources)
            .args(["svc", "--check-dependencies"])
            .run()
    };

    let code = check(sources(&format!("sqlite://{}?mode=rwc", file.display()))).await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(file.is_file(), "the probe connected");

    let code = check(sources("postgres://app:secret@127.0.0.1:1/nope")).await;
    assert_eq!(code, ExitCode::from(1), "a database that does not answer");
    let code = check(sources("oracle://somewhere")).await;
    assert_eq!(code, ExitCode::from(2), "an invalid database section is a configuration error");
    drop(held);
}

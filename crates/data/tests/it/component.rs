//! The database component started through a real application context.

use std::time::{Duration, Instant};

use microframework_core::{CheckStatus, Component, ComponentSet, Error, ErrorKind, HealthReport, ServiceState};
use microframework_data::{Database, DatabaseComponent, DbKind, Migrations};

use crate::{context, migrations};
use microframework_testing::db::TestDatabase;
use microframework_testing::net::FaultProxy as Proxy;

async fn readiness(ctx: &microframework_core::AppContext) -> HealthReport {
    ctx.health().readiness(ctx.lifecycle()).await
}

fn database_check(report: &HealthReport) -> &microframework_core::CheckResult {
    report.checks.iter().find(|c| c.name == "database").expect("a readiness check named `database`")
}

async fn users(db: &Database) -> i64 {
    let sql = "SELECT COUNT(*) FROM users";
    match db {
        Database::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        Database::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        Database::MySql(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
    }
}

/// Starts the component on `url`, checks readiness, the provided database and migrations, then
/// closes the pool and checks that readiness fails.
async fn start_and_close(url: &str, kind: DbKind, secret: Option<&str>) {
    let ctx = context(&format!("database:\n  url: \"{url}\"\n  health_timeout: 1s\n"));
    let mut component = DatabaseComponent::new().with_migrations(migrations());
    assert_eq!(component.name(), "database");
    component.start(&ctx).await.unwrap();
    ctx.lifecycle().set_state(ServiceState::Ready);

    let db = ctx.get::<Database>().expect("the component provides Database");
    assert_eq!(db.kind(), kind);
    assert_eq!(users(&db).await, 0, "migrations ran at start-up");
    assert!(component.database().is_some());

    let report = readiness(&ctx).await;
    assert!(report.is_up(), "{report:?}");
    assert_eq!(database_check(&report).status, CheckStatus::Up);

    db.close().await;
    let report = readiness(&ctx).await;
    assert!(!report.is_up());
    let check = database_check(&report);
    assert_eq!(check.status, CheckStatus::Down);
    let error = check.error.as_deref().unwrap_or_default();
    assert!(!error.is_empty());
    if let Some(secret) = secret {
        assert!(!error.contains(secret), "{error}");
    }
    component.stop(&ctx).await.unwrap();
}

#[tokio::test]
async fn component_on_sqlite() {
    let tdb = TestDatabase::sqlite().await;
    start_and_close(tdb.url(), DbKind::Sqlite, None).await;
    tdb.drop_database().await;
}

#[tokio::test]
async fn component_on_postgres_with_password() {
    let Some(tdb) = TestDatabase::postgres().await else {
        return;
    };
    // The test server trusts local connections, so any password is accepted.
    let url = tdb.url().replacen("://postgres@", "://postgres:hunter2-secret@", 1);
    start_and_close(&url, DbKind::Postgres, Some("hunter2-secret")).await;
    tdb.drop_database().await;
}

#[tokio::test]
async fn component_on_mysql() {
    let Some(tdb) = TestDatabase::mysql().await else {
        return;
    };
    start_and_close(tdb.url(), DbKind::MySql, None).await;
    tdb.drop_database().await;
}

#[tokio::test]
async fn migrate_false_skips_migrations_and_custom_key_is_read() {
    let tdb = TestDatabase::sqlite().await;
    let ctx = context(&format!("storage:\n  db:\n    url: \"{}\"\n    migrate: false\n", tdb.url()));
    let mut component = DatabaseComponent::new().config_key("storage.db").with_migrations(migrations());
    component.start(&ctx).await.unwrap();
    let db = ctx.require::<Database>().unwrap();
    let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'users'")
        .fetch_one(db.sqlite().unwrap())
        .await
        .unwrap();
    assert_eq!(tables, 0);
    component.stop(&ctx).await.unwrap();
    assert!(db.is_closed(), "stop closes the pool");
    tdb.drop_database().await;
}

#[tokio::test]
async fn missing_migrations_for_the_configured_kind_fail_start_up() {
    let tdb = TestDatabase::sqlite().await;
    let ctx = context(&format!("database:\n  url: \"{}\"\n", tdb.url()));
    let mut component = DatabaseComponent::new()
        .with_migrations(Migrations::new().postgres(sqlx::migrate!("tests/migrations/postgres")));
    let err = component.start(&ctx).await.unwrap_err();
    assert_eq!(err.to_string(), "no migrations for SQLite were embedded");
    assert!(ctx.get::<Database>().is_none());
    tdb.drop_database().await;
}

#[tokio::test]
async fn bad_scheme_fails_start_up_naming_the_key() {
    let ctx = context("database:\n  url: \"redis://user:hunter2-secret@cache:6379/0\"\n");
    let mut set = ComponentSet::new();
    set.add(Box::new(DatabaseComponent::new()));
    let err = set.start_all(&ctx).await.unwrap_err().to_string();
    assert!(err.starts_with("component `database` failed to start: invalid configuration"), "{err}");
    assert!(err.contains("`database.url`"), "{err}");
    assert!(err.contains("postgres:") && err.contains("mysql:") && err.contains("sqlite:"), "{err}");
    assert!(!err.contains("hunter2-secret"), "{err}");
}

#[tokio::test]
async fn unreachable_server_fails_start_up_naming_the_problem() {
    let ctx = context("database:\n  url: \"postgres://app:hunter2-secret@127.0.0.1:1/users\"\n  connect_timeout: 1s\n");
    let mut set = ComponentSet::new();
    set.add(Box::new(DatabaseComponent::new()));
    // Refused at once: start-up fails with the reason (a hang would be caught by the guard).
    let err = hang_guard(set.start_all(&ctx)).await.unwrap_err().to_string();
    assert_eq!(
        err,
        "component `database` failed to start: cannot connect to PostgreSQL at postgres://app:***@127.0.0.1:1/users: \
         connection refused (is the server running and reachable? check database.url)"
    );
}

/// `fut`, or a panic if it has not finished after a minute: it hangs.
async fn hang_guard<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), fut).await.expect("it hung")
}

/// Cuts the connection to the server while running: readiness fails, queries fail fast with
/// `Unavailable`, and everything recovers once the server is reachable again.
async fn outage_and_recovery(tdb: TestDatabase) {
    let mut url = url::Url::parse(tdb.url()).unwrap();
    let target = tokio::net::lookup_host((url.host_str().unwrap(), url.port_or_known_default().unwrap()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(target).await.unwrap();
    url.set_port(Some(proxy.addr().port())).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();

    let ctx = context(&format!(
        "database:\n  url: \"{url}\"\n  acquire_timeout: 1s\n  health_timeout: 1500ms\n  min_connections: 1\n"
    ));
    let mut component = DatabaseComponent::new().with_migrations(migrations());
    component.start(&ctx).await.unwrap();
    ctx.lifecycle().set_state(ServiceState::Ready);
    let db = ctx.require::<Database>().unwrap();
    assert!(readiness(&ctx).await.is_up());

    // A restart while idle: dead idle connections are detected and replaced on acquire, so
    // the first query afterwards succeeds.
    proxy.cut();
    proxy.restore();
    db.ping().await.expect("the first query after a restart succeeds");

    proxy.cut();
    // The query fails (after acquire_timeout) with Unavailable instead of waiting for the server.
    let err = hang_guard(db.ping()).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let e = Error::from(err);
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(e.message(), "the database is unavailable; try again later");
    let report = readiness(&ctx).await;
    assert!(!report.is_up());
    assert_eq!(database_check(&report).status, CheckStatus::Down);

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.ping().await.is_err() {
        assert!(Instant::now() < deadline, "the pool did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(users(&db).await, 0);
    assert!(readiness(&ctx).await.is_up());

    component.stop(&ctx).await.unwrap();
    proxy.cut();
    tdb.drop_database().await;
}

#[tokio::test]
async fn postgres_outage_and_recovery() {
    let Some(tdb) = TestDatabase::postgres().await else {
        return;
    };
    outage_and_recovery(tdb).await;
}

#[tokio::test]
async fn mysql_outage_and_recovery() {
    let Some(tdb) = TestDatabase::mysql().await else {
        return;
    };
    outage_and_recovery(tdb).await;
}

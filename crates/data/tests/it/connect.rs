//! Start-up failures: unreachable servers, bad credentials, bad configuration.

use std::time::{Duration, Instant};

use microframework_core::{Error, ErrorKind};
use microframework_data::{DataError, Database, DatabaseConfig};

use crate::config;
use microframework_testing::db::TestDatabase;

fn quick(url: &str) -> DatabaseConfig {
    DatabaseConfig { connect_timeout: Duration::from_secs(1), ..config(url) }
}

async fn connect_err(url: &str) -> (DataError, Duration) {
    let start = Instant::now();
    let err = Database::connect(&quick(url), "unused").await.unwrap_err();
    (err, start.elapsed())
}

#[tokio::test]
async fn unreachable_postgres_fails_quickly_and_clearly() {
    let (err, took) = connect_err("postgres://app:s3cret-pw@127.0.0.1:1/users").await;
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(
        err.to_string(),
        "cannot connect to PostgreSQL at postgres://app:***@127.0.0.1:1/users: connection refused \
         (is the server running and reachable? check database.url)"
    );
    assert!(!format!("{err:?}").contains("s3cret"));
    assert!(err.is_unavailable());
    assert_eq!(Error::from(err).kind(), ErrorKind::Unavailable);
}

#[tokio::test]
async fn unreachable_mysql_fails_quickly_and_clearly() {
    let (err, took) = connect_err("mysql://root:s3cret-pw@127.0.0.1:1/test").await;
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot connect to MySQL at mysql://root:***@127.0.0.1:1/test: connection refused"),
        "{msg}"
    );
    assert!(!msg.contains("s3cret"));
}

#[tokio::test]
async fn silent_server_times_out_after_connect_timeout() {
    // A listener that accepts connections (via the backlog) but never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("postgres://app:s3cret-pw@{}/users", listener.local_addr().unwrap());
    let (err, took) = connect_err(&url).await;
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "took {took:?}");
    let msg = err.to_string();
    assert!(msg.contains("no answer within 1s"), "{msg}");
    assert!(msg.contains("check database.url and database.connect_timeout"), "{msg}");
    assert!(!msg.contains("s3cret"));
}

#[tokio::test]
async fn unknown_postgres_database_is_named() {
    let Some(tdb) = TestDatabase::postgres().await else {
        return;
    };
    let url = tdb.url().replacen(tdb.name(), "mf_test_does_not_exist", 1);
    let (err, _) = connect_err(&url).await;
    let msg = err.to_string();
    assert!(msg.contains("mf_test_does_not_exist") && msg.contains("does the database exist?"), "{msg}");
    tdb.drop_database().await;
}

#[tokio::test]
async fn wrong_mysql_password_says_to_check_credentials() {
    let Some(tdb) = TestDatabase::mysql().await else {
        return;
    };
    let url = tdb.url().replacen("://root@", "://root:wrong-pass@", 1);
    assert_ne!(url, tdb.url(), "the test server URL is expected to use root without a password");
    let (err, _) = connect_err(&url).await;
    let msg = err.to_string();
    assert!(msg.contains("Access denied") && msg.contains("check the user name and password in database.url"), "{msg}");
    assert!(!msg.contains("wrong-pass"), "{msg}");
    tdb.drop_database().await;
}

#[tokio::test]
async fn missing_sqlite_file_without_create_mode() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/absent.db", dir.path().display());
    let (err, _) = connect_err(&url).await;
    let msg = err.to_string();
    assert!(msg.starts_with("cannot connect to SQLite at"), "{msg}");
    assert!(msg.contains("?mode=rwc"), "{msg}");
}

#[tokio::test]
async fn invalid_configuration_is_rejected_before_connecting() {
    let cfg = DatabaseConfig { max_connections: 0, ..config("redis://cache:6379") };
    let err = Database::connect(&cfg, "unused").await.unwrap_err();
    let DataError::Config(problems) = &err else { panic!("{err:?}") };
    let keys: Vec<&str> = problems.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["database.url", "database.max_connections"]);
    let err = Database::connect(&DatabaseConfig::default(), "ftp://x").await.unwrap_err();
    assert!(matches!(err, DataError::InvalidUrl { .. }), "{err:?}");
}

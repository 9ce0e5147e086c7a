//! Connecting, migrating and error mapping on each kind of database.

use microframework_core::{Error, ErrorKind};
use microframework_data::{DataError, Database, DbKind, Migrations};

use crate::{config, migrations};
use microframework_testing::db::{DEFAULT_MYSQL_URL, MYSQL_URL_VAR, TestDatabase};

async fn insert_user(db: &Database, email: &str, name: Option<&str>, age: Option<i32>) -> Result<(), DataError> {
    match db {
        Database::Sqlite(p) => {
            sqlx::query("INSERT INTO users (email, name, age) VALUES (?, ?, ?)")
                .bind(email)
                .bind(name)
                .bind(age)
                .execute(p)
                .await?;
        }
        Database::Postgres(p) => {
            sqlx::query("INSERT INTO users (email, name, age) VALUES ($1, $2, $3)")
                .bind(email)
                .bind(name)
                .bind(age)
                .execute(p)
                .await?;
        }
        Database::MySql(p) => {
            sqlx::query("INSERT INTO users (email, name, age) VALUES (?, ?, ?)")
                .bind(email)
                .bind(name)
                .bind(age)
                .execute(p)
                .await?;
        }
    }
    Ok(())
}

async fn insert_post(db: &Database, user_id: i64) -> Result<(), DataError> {
    match db {
        Database::Sqlite(p) => {
            sqlx::query("INSERT INTO posts (user_id, title) VALUES (?, 't')").bind(user_id).execute(p).await?;
        }
        Database::Postgres(p) => {
            sqlx::query("INSERT INTO posts (user_id, title) VALUES ($1, 't')").bind(user_id).execute(p).await?;
        }
        Database::MySql(p) => {
            sqlx::query("INSERT INTO posts (user_id, title) VALUES (?, 't')").bind(user_id).execute(p).await?;
        }
    }
    Ok(())
}

async fn user_name(db: &Database, email: &str) -> Result<String, DataError> {
    Ok(match db {
        Database::Sqlite(p) => {
            sqlx::query_scalar("SELECT name FROM users WHERE email = ?").bind(email).fetch_one(p).await?
        }
        Database::Postgres(p) => {
            sqlx::query_scalar("SELECT name FROM users WHERE email = $1").bind(email).fetch_one(p).await?
        }
        Database::MySql(p) => {
            sqlx::query_scalar("SELECT name FROM users WHERE email = ?").bind(email).fetch_one(p).await?
        }
    })
}

/// Migrates and checks how database errors map to service errors.
async fn exercise(db: &Database, kind: DbKind) {
    assert_eq!(db.kind(), kind);
    db.ping().await.unwrap();
    db.migrate(&migrations()).await.unwrap();
    db.migrate(&migrations()).await.expect("migrating twice is a no-op");

    insert_user(db, "ada@example.com", Some("Ada"), Some(36)).await.unwrap();
    assert_eq!(user_name(db, "ada@example.com").await.unwrap(), "Ada");

    let dup = insert_user(db, "ada@example.com", Some("Other"), None).await.unwrap_err();
    assert!(dup.is_unique_violation(), "{dup:?}");
    assert!(!dup.is_unavailable());
    let e = Error::from(dup);
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(e.message(), "a record with the same email already exists");
    assert!(e.cause().is_some());

    let missing = user_name(db, "nobody@example.com").await.unwrap_err();
    assert!(missing.is_not_found());
    let e = Error::from(missing);
    assert_eq!(e.kind(), ErrorKind::NotFound);

    let e = Error::from(insert_user(db, "nameless@example.com", None, None).await.unwrap_err());
    assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
    assert_eq!(e.fields().iter().map(|f| f.field.as_str()).collect::<Vec<_>>(), ["name"], "{e}");

    let e = Error::from(insert_user(db, "young@example.com", Some("Young"), Some(-1)).await.unwrap_err());
    assert_eq!(e.kind(), ErrorKind::Validation, "{e}");

    // Values the client sent that the database refuses are the client's fault (4xx), not 500s.
    match kind {
        DbKind::Postgres => {
            // PostgreSQL cannot store NUL in text.
            let e = Error::from(insert_user(db, "nul@example.com", Some("a\u{0}b"), None).await.unwrap_err());
            assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
            assert!(e.message().contains("cannot store"), "{e}");
        }
        DbKind::MySql => {
            let long = "x".repeat(300);
            let e = Error::from(insert_user(db, "long@example.com", Some(&long), None).await.unwrap_err());
            assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
            assert!(e.message().contains("longer than"), "{e}");
        }
        DbKind::Sqlite => {}
    }

    let e = Error::from(insert_post(db, 999_999).await.unwrap_err());
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.message().contains("refers to a record"), "{e}");

    let none = db.migrate(&Migrations::new()).await.unwrap_err();
    assert_eq!(none.to_string(), format!("no migrations for {} were embedded", kind.name()));

    db.close().await;
    assert!(db.is_closed());
    let closed = db.ping().await.unwrap_err();
    assert!(closed.is_unavailable(), "{closed:?}");
    let e = Error::from(closed);
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(e.message(), "the database is unavailable; try again later");
}

#[tokio::test]
async fn sqlite_migrations_and_errors() {
    let tdb = TestDatabase::sqlite().await;
    let db = Database::connect(&config(tdb.url()), "unused").await.unwrap();
    exercise(&db, DbKind::Sqlite).await;
    tdb.drop_database().await;
}

#[tokio::test]
async fn postgres_migrations_and_errors() {
    let Some(tdb) = TestDatabase::postgres().await else {
        return;
    };
    let db = Database::connect(&config(tdb.url()), "unused").await.unwrap();
    exercise(&db, DbKind::Postgres).await;
    tdb.drop_database().await;
}

#[tokio::test]
async fn mysql_migrations_and_errors() {
    let Some(tdb) = TestDatabase::mysql().await else {
        return;
    };
    let db = Database::connect(&config(tdb.url()), "unused").await.unwrap();
    exercise(&db, DbKind::MySql).await;
    tdb.drop_database().await;
}

#[tokio::test]
async fn mariadb_scheme_is_accepted() {
    let Some(tdb) = TestDatabase::mysql().await else {
        return;
    };
    let url = tdb.url().replacen("mysql://", "mariadb://", 1);
    let db = Database::connect(&config(&url), "unused").await.unwrap();
    assert_eq!(db.kind(), DbKind::MySql);
    db.ping().await.unwrap();
    db.close().await;
    tdb.drop_database().await;
}

#[tokio::test]
async fn runtime_loaded_migrations() {
    let tdb = TestDatabase::sqlite().await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/migrations/sqlite");
    let m = Migrations::from_dir(DbKind::Sqlite, dir).await.unwrap();
    assert!(m.get(DbKind::Postgres).is_none());
    let db = Database::connect(&config(tdb.url()), "unused").await.unwrap();
    db.migrate(&m).await.unwrap();
    insert_user(&db, "a@example.com", Some("A"), None).await.unwrap();
    db.close().await;
    let err = Migrations::from_dir(DbKind::Sqlite, "/nonexistent/migrations").await.unwrap_err();
    assert!(err.to_string().starts_with("migrating the SQLite database failed"), "{err}");
    tdb.drop_database().await;
}

#[tokio::test]
async fn sqlite_file_is_created_with_its_directory_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nested/deeper/app.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let db = Database::connect(&config(&url), "unused").await.unwrap();
    assert!(file.exists(), "the database file and its directories are created");
    let pool = db.sqlite().unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(pool).await.unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(pool).await.unwrap();
    assert_eq!(fk, 1);
    assert!(db.postgres().is_none() && db.mysql().is_none());
    db.close().await;
}

#[tokio::test]
async fn sqlite_default_url_is_used_when_none_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let default = format!("sqlite://{}/data/svc.db?mode=rwc", dir.path().display());
    let cfg = microframework_data::DatabaseConfig::default();
    let db = Database::connect(&cfg, &default).await.unwrap();
    assert!(dir.path().join("data/svc.db").exists());
    db.close().await;
}

#[tokio::test]
async fn sqlite_in_memory_keeps_its_data_across_connections() {
    let db = Database::connect(&config("sqlite::memory:"), "unused").await.unwrap();
    db.migrate(&migrations()).await.unwrap();
    let pool = db.sqlite().unwrap();
    // Hold one connection so that the next query uses another.
    let mut held = pool.acquire().await.unwrap();
    insert_user(&db, "a@example.com", Some("A"), None).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&mut *held).await.unwrap();
    assert_eq!(n, 1);
    drop(held);
    db.close().await;
}

#[tokio::test]
async fn test_databases_are_isolated_and_dropped_even_without_drop_database() {
    let Some(a) = TestDatabase::postgres().await else {
        return;
    };
    let b = TestDatabase::postgres().await.unwrap();
    assert_ne!(a.url(), b.url());
    assert!(a.name().starts_with("mf_test_"));
    let db = Database::connect(&config(a.url()), "unused").await.unwrap();
    let exists = "SELECT COUNT(*) FROM pg_database WHERE datname = $1";
    let count = |name: String| {
        let pool = db.postgres().unwrap().clone();
        async move { sqlx::query_scalar::<_, i64>(exists).bind(name).fetch_one(&pool).await.unwrap() }
    };
    let b_name = b.name().to_owned();
    assert_eq!(count(b_name.clone()).await, 1);
    drop(b); // the Drop impl drops it on its own thread and runtime
    assert_eq!(count(b_name).await, 0, "dropped by Drop");
    db.close().await;
    a.drop_database().await;

    let Some(m) = TestDatabase::mysql().await else {
        return;
    };
    let name = m.name().to_owned();
    drop(m);
    let admin_url = std::env::var(MYSQL_URL_VAR).unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_owned());
    let admin = Database::connect(&config(&admin_url), "unused").await;
    if let Ok(admin) = admin {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?")
            .bind(name)
            .fetch_one(admin.mysql().unwrap())
            .await
            .unwrap();
        assert_eq!(n, 0, "dropped by Drop");
        admin.close().await;
    }
}

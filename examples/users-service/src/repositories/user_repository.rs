use chrono::{DateTime, Utc};
use microframework::data::DataError;
use sqlx::SqlitePool;
use sqlx::types::uuid::fmt::Hyphenated;
use uuid::Uuid;

use crate::models::User;

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Hyphenated,
    name: String,
    email: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self { id: r.id.into_uuid(), name: r.name, email: r.email, created_at: r.created_at, updated_at: r.updated_at }
    }
}

/// Users in SQLite.
#[derive(Clone, Debug)]
pub struct UserRepository {
    pool: SqlitePool,
}

impl UserRepository {
    /// A repository over `pool`.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// A page of users, oldest first, and the total count.
    pub async fn list(&self, offset: u64, limit: u32) -> Result<(Vec<User>, u64), DataError> {
        let rows: Vec<UserRow> = sqlx::query_as(
            "SELECT id, name, email, created_at, updated_at FROM users ORDER BY created_at, id LIMIT ? OFFSET ?",
        )
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?;
        Ok((rows.into_iter().map(User::from).collect(), u64::try_from(total).unwrap_or(0)))
    }

    /// The user with `id`, if any.
    pub async fn get(&self, id: Uuid) -> Result<Option<User>, DataError> {
        let row: Option<UserRow> =
            sqlx::query_as("SELECT id, name, email, created_at, updated_at FROM users WHERE id = ?")
                .bind(id.hyphenated())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(User::from))
    }

    /// Inserts `user`.
    pub async fn insert(&self, user: &User) -> Result<(), DataError> {
        sqlx::query("INSERT INTO users (id, name, email, created_at, updated_at) VALUES (?, ?, ?, ?, ?)")
            .bind(user.id.hyphenated())
            .bind(&user.name)
            .bind(&user.email)
            .bind(user.created_at)
            .bind(user.updated_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Updates `user`; `false` when it does not exist.
    pub async fn update(&self, user: &User) -> Result<bool, DataError> {
        let done = sqlx::query("UPDATE users SET name = ?, email = ?, updated_at = ? WHERE id = ?")
            .bind(&user.name)
            .bind(&user.email)
            .bind(user.updated_at)
            .bind(user.id.hyphenated())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes the user with `id`; `false` when it does not exist.
    pub async fn delete(&self, id: Uuid) -> Result<bool, DataError> {
        let done = sqlx::query("DELETE FROM users WHERE id = ?").bind(id.hyphenated()).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }
}

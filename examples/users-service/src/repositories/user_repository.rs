use chrono::{DateTime, Utc};
use microframework::data::DataError;
use sqlx::SqlitePool as Pool;
use sqlx::types::uuid::fmt::Hyphenated;
use uuid::Uuid;

use crate::models::User;

#[derive(sqlx::FromRow)]
struct Row {
    id: Hyphenated,
    name: String,
    description: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for User {
    fn from(r: Row) -> Self {
        Self {
            id: r.id.into_uuid(),
            name: r.name,
            description: r.description,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn key(id: Uuid) -> Hyphenated {
    id.hyphenated()
}

/// Users in SQLite.
#[derive(Clone, Debug)]
pub struct UserRepository {
    pool: Pool,
}

impl UserRepository {
    /// A repository over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// A page of items, oldest first, and the total count.
    pub async fn list(&self, offset: u64, limit: u32) -> Result<(Vec<User>, u64), DataError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, name, description, created_at, updated_at FROM users \
             ORDER BY created_at, id LIMIT ? OFFSET ?",
        )
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok((
            rows.into_iter().map(Into::into).collect(),
            u64::try_from(total).unwrap_or(0),
        ))
    }

    /// The item with `id`, if any.
    pub async fn get(&self, id: Uuid) -> Result<Option<User>, DataError> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, name, description, created_at, updated_at FROM users WHERE id = ?",
        )
        .bind(key(id))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    /// Inserts `item`.
    pub async fn insert(&self, item: &User) -> Result<(), DataError> {
        sqlx::query(
            "INSERT INTO users (id, name, description, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(key(item.id))
        .bind(&item.name)
        .bind(&item.description)
        .bind(item.created_at)
        .bind(item.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Updates `item`; `false` when it does not exist.
    pub async fn update(&self, item: &User) -> Result<bool, DataError> {
        let done =
            sqlx::query("UPDATE users SET name = ?, description = ?, updated_at = ? WHERE id = ?")
                .bind(&item.name)
                .bind(&item.description)
                .bind(item.updated_at)
                .bind(key(item.id))
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes the item with `id`; `false` when it does not exist.
    pub async fn delete(&self, id: Uuid) -> Result<bool, DataError> {
        let done = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(key(id))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

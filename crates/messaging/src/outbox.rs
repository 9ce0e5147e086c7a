//! The transactional outbox: a message written in the same SQL transaction as the data it is
//! about, and published after the commit by a relay, with retries.
//!
//! ```ignore
//! let mut tx = pool.begin().await?;
//! sqlx::query("INSERT INTO users (id, name) VALUES (?, ?)").bind(&id).bind(&name).execute(&mut *tx).await?;
//! outbox::enqueue(&mut *tx, Outgoing::json("users.created", &user)?).await?;
//! tx.commit().await?; // the message exists if and only if the user does
//! ```
//!
//! The relay ([`MessagingPlugin::outbox`](crate::MessagingPlugin::outbox)) creates the table
//! `mf_outbox` when it starts, then reads it in insertion order, publishes, and deletes what the
//! broker took. A row the broker refuses waits (`attempts`, `last_error`, a growing delay up to a
//! minute), the round stops there, and later rows of the same key wait behind it, so that a key's
//! messages keep their order (rows without a key are not held back); a crash between the commit
//! and the publish loses nothing (the row stays), and one between the publish and the delete
//! publishes the row again with the same message id (`mf-message-id`, and NATS drops it as a
//! duplicate). On PostgreSQL and MySQL/MariaDB several replicas relay at once (`FOR UPDATE SKIP
//! LOCKED`); SQLite has one writer anyway.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use microframework_data::Database;
use microframework_data::sqlx;

use crate::broker::MessagingError;
use crate::message::{Headers, MESSAGE_ID, Outgoing};
use crate::messaging::{Messaging, prepare};

/// The outbox table.
pub const TABLE: &str = "mf_outbox";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

fn db_err(e: impl std::fmt::Display) -> MessagingError {
    MessagingError::Publish { topic: TABLE.into(), reason: format!("the outbox: {e}") }
}

/// A connection (inside a transaction) the outbox can be written through: `&mut *tx` of a
/// `sqlx::Transaction` on SQLite, PostgreSQL or MySQL.
#[async_trait]
pub trait OutboxConnection: Send {
    /// Inserts one row.
    async fn insert_outbox(&mut self, row: &Row) -> Result<(), sqlx::Error>;
}

/// A row of the outbox.
#[derive(Debug, Clone)]
pub struct Row {
    id: String,
    topic: String,
    key: Option<String>,
    headers: String,
    payload: Vec<u8>,
}

impl Row {
    fn from_outgoing(message: &Outgoing) -> Result<Self, MessagingError> {
        Ok(Self {
            id: message.headers.get(MESSAGE_ID).cloned().unwrap_or_default(),
            topic: message.topic.clone(),
            key: message.key.clone(),
            headers: serde_json::to_string(&message.headers).map_err(|e| MessagingError::Encode(e.to_string()))?,
            payload: message.payload.to_vec(),
        })
    }
}

/// Writes `message` into the outbox through `conn` (a transaction's connection); it is
/// published once the transaction commits. Returns its id. The message gets its id and the
/// current trace context now, as [`Messaging::publish`] would.
///
/// # Errors
///
/// The insert failed (the transaction should be rolled back), or the relay never created the
/// table (no `MessagingPlugin::outbox()`).
pub async fn enqueue<C: OutboxConnection + ?Sized>(conn: &mut C, message: Outgoing) -> Result<String, MessagingError> {
    let message = prepare(message);
    let row = Row::from_outgoing(&message)?;
    conn.insert_outbox(&row).await.map_err(db_err)?;
    Ok(row.id)
}

macro_rules! insert_impl {
    ($conn:ty, $sql:expr) => {
        #[async_trait]
        impl OutboxConnection for $conn {
            async fn insert_outbox(&mut self, row: &Row) -> Result<(), sqlx::Error> {
                sqlx::query($sql)
                    .bind(&row.id)
                    .bind(&row.topic)
                    .bind(&row.key)
                    .bind(&row.headers)
                    .bind(&row.payload)
                    .bind(now_ms())
                    .execute(&mut *self)
                    .await
                    .map(|_| ())
            }
        }
    };
}

#[cfg(feature = "sqlite")]
insert_impl!(
    sqlx::SqliteConnection,
    "INSERT INTO mf_outbox (id, topic, msg_key, headers, payload, next_attempt_ms) VALUES (?, ?, ?, ?, ?, ?)"
);
#[cfg(feature = "postgres")]
insert_impl!(
    sqlx::PgConnection,
    "INSERT INTO mf_outbox (id, topic, msg_key, headers, payload, next_attempt_ms) VALUES ($1, $2, $3, $4, $5, $6)"
);
#[cfg(feature = "mysql")]
insert_impl!(
    sqlx::MySqlConnection,
    "INSERT INTO mf_outbox (id, topic, msg_key, headers, payload, next_attempt_ms) VALUES (?, ?, ?, ?, ?, ?)"
);

/// What the relay reads of a row.
type Pending = (i64, String, String, Option<String>, String, Vec<u8>, i32, i64);

/// Creates the outbox table unless it exists.
///
/// # Errors
///
/// The database refused.
pub async fn create_table(db: &Database) -> Result<(), MessagingError> {
    match db {
        #[cfg(feature = "sqlite")]
        Database::Sqlite(pool) => sqlx::query(
            "CREATE TABLE IF NOT EXISTS mf_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, \
             topic TEXT NOT NULL, msg_key TEXT, headers TEXT NOT NULL, payload BLOB NOT NULL, \
             attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms BIGINT NOT NULL, last_error TEXT)",
        )
        .execute(pool)
        .await
        .map(|_| ()),
        #[cfg(feature = "postgres")]
        Database::Postgres(pool) => sqlx::query(
            "CREATE TABLE IF NOT EXISTS mf_outbox (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL, \
             topic TEXT NOT NULL, msg_key TEXT, headers TEXT NOT NULL, payload BYTEA NOT NULL, \
             attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms BIGINT NOT NULL, last_error TEXT)",
        )
        .execute(pool)
        .await
        .map(|_| ()),
        #[cfg(feature = "mysql")]
        Database::MySql(pool) => sqlx::query(
            "CREATE TABLE IF NOT EXISTS mf_outbox (seq BIGINT AUTO_INCREMENT PRIMARY KEY, id VARCHAR(64) NOT NULL, \
             topic VARCHAR(512) NOT NULL, msg_key VARCHAR(512), headers TEXT NOT NULL, payload LONGBLOB NOT NULL, \
             attempts INT NOT NULL DEFAULT 0, next_attempt_ms BIGINT NOT NULL, last_error TEXT)",
        )
        .execute(pool)
        .await
        .map(|_| ()),
    }
    .map_err(db_err)
}

/// One relay round over the first `batch` rows in insertion order: publishes the due ones and
/// deletes them, skips a row waiting for its retry together with every later row of the same key
/// (so that a key's messages keep their order), and stops at the first refusal (recording it on
/// the row: the broker is probably away). Returns how many were published.
///
/// # Errors
///
/// The database failed (the rows stay for the next round).
pub async fn relay_once(db: &Database, messaging: &Messaging, batch: i64) -> Result<usize, MessagingError> {
    macro_rules! round {
        ($pool:expr, $select:expr, $delete:expr, $fail:expr) => {{
            let mut tx = $pool.begin().await.map_err(db_err)?;
            let rows: Vec<Pending> =
                sqlx::query_as($select).bind(batch).fetch_all(&mut *tx).await.map_err(db_err)?;
            let mut sent = 0;
            let now = now_ms();
            let mut waiting: std::collections::HashSet<String> = std::collections::HashSet::new();
            for (seq, id, topic, key, headers, payload, attempts, next_attempt) in rows {
                if next_attempt > now || key.as_ref().is_some_and(|k| waiting.contains(k)) {
                    waiting.extend(key);
                    continue;
                }
                let headers: Headers = serde_json::from_str(&headers).unwrap_or_default();
                let message = Outgoing { topic, key, headers, payload: payload.into() };
                match messaging.publish(message).await {
                    Ok(_) => {
                        sqlx::query($delete).bind(seq).execute(&mut *tx).await.map_err(db_err)?;
                        sent += 1;
                    }
                    Err(e) => {
                        let delay = Duration::from_millis(500u64 << attempts.clamp(0, 7) as u32).min(Duration::from_secs(60));
                        let next = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(60_000);
                        tracing::warn!(message_id = %id, error = %e, retry_in = ?delay, "outbox: publishing failed; the message waits");
                        sqlx::query($fail).bind(next).bind(e.to_string()).bind(seq).execute(&mut *tx).await.map_err(db_err)?;
                        break;
                    }
                }
            }
            tx.commit().await.map_err(db_err)?;
            Ok(sent)
        }};
    }
    match db {
        #[cfg(feature = "sqlite")]
        Database::Sqlite(pool) => round!(
            pool,
            "SELECT seq, id, topic, msg_key, headers, payload, attempts, next_attempt_ms FROM mf_outbox \
             ORDER BY seq LIMIT ?",
            "DELETE FROM mf_outbox WHERE seq = ?",
            "UPDATE mf_outbox SET attempts = attempts + 1, next_attempt_ms = ?, last_error = ? WHERE seq = ?"
        ),
        #[cfg(feature = "postgres")]
        Database::Postgres(pool) => round!(
            pool,
            "SELECT seq, id, topic, msg_key, headers, payload, attempts, next_attempt_ms FROM mf_outbox \
             ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
            "DELETE FROM mf_outbox WHERE seq = $1",
            "UPDATE mf_outbox SET attempts = attempts + 1, next_attempt_ms = $1, last_error = $2 WHERE seq = $3"
        ),
        #[cfg(feature = "mysql")]
        Database::MySql(pool) => round!(
            pool,
            "SELECT seq, id, topic, msg_key, headers, payload, attempts, next_attempt_ms FROM mf_outbox \
             ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED",
            "DELETE FROM mf_outbox WHERE seq = ?",
            "UPDATE mf_outbox SET attempts = attempts + 1, next_attempt_ms = ?, last_error = ? WHERE seq = ?"
        ),
    }
}

/// Relays until `stop` is cancelled: a round every `interval`, at once again after a full batch.
pub async fn run_relay(
    db: Database,
    messaging: Messaging,
    interval: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    const BATCH: i64 = 100;
    loop {
        let sent = match relay_once(&db, &messaging, BATCH).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay round failed; retrying");
                0
            }
        };
        if sent as i64 == BATCH {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

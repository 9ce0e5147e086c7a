//! The transactional outbox on each real database: what a committed transaction wrote is
//! published, in order; what a rolled-back one wrote is not; while the broker refuses, the rows
//! wait with their error and are published once it takes them again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use microframework_data::{Database, DatabaseConfig, sqlx};
use microframework_messaging::outbox;
use microframework_messaging::{
    Broker, Consumer, MemoryBroker, Message, Messaging, MessagingError, Outgoing, SubscribeSpec, Subscription,
};
use microframework_testing::db::TestDatabase;
use tokio::sync::mpsc;

/// The in-process broker, refusing publishes while `down`.
struct Flaky {
    inner: MemoryBroker,
    down: AtomicBool,
}

#[async_trait]
impl Broker for Flaky {
    fn provider(&self) -> &'static str {
        "flaky"
    }

    async fn publish(&self, message: Outgoing) -> Result<(), MessagingError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(MessagingError::Publish { topic: message.topic, reason: "the broker is down".into() });
        }
        self.inner.publish(message).await
    }

    async fn subscribe(&self, spec: &SubscribeSpec) -> Result<Box<dyn Consumer>, MessagingError> {
        self.inner.subscribe(spec).await
    }

    async fn ping(&self) -> Result<(), MessagingError> {
        Ok(())
    }
}

async fn databases() -> Vec<(TestDatabase, Database)> {
    let mut out = Vec::new();
    let candidates = [Some(TestDatabase::sqlite().await), TestDatabase::postgres().await, TestDatabase::mysql().await];
    for test_db in candidates.into_iter().flatten() {
        let cfg = DatabaseConfig { url: Some(test_db.url().to_owned()), ..DatabaseConfig::default() };
        let db = Database::connect(&cfg, test_db.url()).await.unwrap();
        out.push((test_db, db));
    }
    out
}

/// Writes `n` messages numbered from `from` in one transaction, committed or rolled back.
async fn write(db: &Database, topic: &str, from: usize, n: usize, commit: bool) {
    macro_rules! tx {
        ($pool:expr) => {{
            let mut tx = $pool.begin().await.unwrap();
            for i in from..from + n {
                outbox::enqueue(&mut *tx, Outgoing::new(topic, i.to_string()).key("k")).await.unwrap();
            }
            if commit { tx.commit().await.unwrap() } else { tx.rollback().await.unwrap() }
        }};
    }
    match db {
        Database::Sqlite(pool) => tx!(pool),
        Database::Postgres(pool) => tx!(pool),
        Database::MySql(pool) => tx!(pool),
    }
}

async fn pending(db: &Database) -> (i64, Option<String>) {
    let sql = "SELECT COUNT(*), MAX(last_error) FROM mf_outbox";
    match db {
        Database::Sqlite(pool) => sqlx::query_as(sql).fetch_one(pool).await.unwrap(),
        Database::Postgres(pool) => sqlx::query_as(sql).fetch_one(pool).await.unwrap(),
        Database::MySql(pool) => sqlx::query_as(sql).fetch_one(pool).await.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_messages_are_relayed_in_order_and_rolled_back_ones_never() {
    for (test_db, db) in databases().await {
        let kind = format!("{:?}", test_db.kind());
        outbox::create_table(&db).await.unwrap();
        outbox::create_table(&db).await.unwrap(); // idempotent
        let broker = Arc::new(Flaky { inner: MemoryBroker::new(), down: AtomicBool::new(true) });
        let messaging = Messaging::with_broker("outbox-test", broker.clone());
        let topic = format!("outbox-{}", uuid::Uuid::new_v4().simple());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handle = messaging
            .subscribe(
                Subscription::new(&topic, move |msg: Message| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(String::from_utf8_lossy(&msg.payload).into_owned());
                        Ok(())
                    }
                }),
                &Default::default(),
            )
            .await
            .unwrap();

        write(&db, &topic, 0, 10, true).await;
        write(&db, &topic, 100, 5, false).await;
        write(&db, &topic, 10, 10, true).await;
        assert_eq!(pending(&db).await.0, 20, "{kind}: the rolled-back messages are not in the outbox");

        // The broker refuses: nothing is lost, the first row records why.
        assert_eq!(outbox::relay_once(&db, &messaging, 100).await.unwrap(), 0, "{kind}");
        let (count, error) = pending(&db).await;
        assert_eq!(count, 20, "{kind}");
        assert!(error.is_some_and(|e| e.contains("the broker is down")), "{kind}");

        broker.down.store(false, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while pending(&db).await.0 > 0 {
            assert!(tokio::time::Instant::now() < deadline, "{kind}: the outbox did not drain");
            outbox::relay_once(&db, &messaging, 100).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut got = Vec::new();
        while got.len() < 20 {
            got.push(tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap());
        }
        let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        assert_eq!(got, expected, "{kind}: every committed message, in commit order");
        assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv()).await.is_err(), "{kind}: nothing more");
        handle.drain(Duration::from_secs(5)).await;
        drop(test_db);
    }
}

//! The cache against each real store (the machine's Redis at `MF_TEST_REDIS_URL`, default
//! redis://127.0.0.1:6379, keys under a prefix of the test's own), and through a Redis outage on
//! a private server that the test starts, stops and starts again.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use microframework_cache::{Cache, CacheConfig, CacheStore, MemoryStore, RedisStore};

fn config() -> CacheConfig {
    CacheConfig {
        key_prefix: format!("mfc-test-{}:", uuid::Uuid::new_v4().simple()),
        timeout: Duration::from_millis(500),
        ..CacheConfig::default()
    }
}

fn redis_url() -> String {
    std::env::var("MF_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn stores() -> Vec<Arc<dyn CacheStore>> {
    vec![
        Arc::new(MemoryStore::new(10_000)),
        Arc::new(RedisStore::new(&redis_url(), Duration::from_millis(500)).unwrap()),
    ]
}

async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "not within 30 s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct User {
    id: u32,
    name: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_set_delete_and_get_many() {
    for store in stores() {
        let provider = store.provider();
        store.ping().await.unwrap_or_else(|e| panic!("{provider}: {e}"));
        let cache = Cache::new("test", store, &config());
        assert_eq!(cache.get::<User>("u1").await, None, "{provider}");
        cache.set("u1", &User { id: 1, name: "ada".into() }, None).await;
        cache.set("u2", &User { id: 2, name: "bob".into() }, None).await;
        assert_eq!(cache.get::<User>("u1").await, Some(User { id: 1, name: "ada".into() }), "{provider}");
        let many = cache.get_many::<User>(&["u2", "nope", "u1"]).await;
        assert_eq!(many.iter().map(|u| u.as_ref().map(|u| u.id)).collect::<Vec<_>>(), [Some(2), None, Some(1)]);
        cache.delete("u1").await;
        assert_eq!(cache.get::<User>("u1").await, None, "{provider}");
        // A value of another type is a miss, not an error.
        assert_eq!(cache.get::<Vec<String>>("u2").await, None, "{provider}");
        cache.set("short", &"lived", Some(Duration::from_millis(100))).await;
        eventually(&format!("{provider}: the entry expires"), async || cache.get::<String>("short").await.is_none())
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_run_one_load() {
    for store in stores() {
        let provider = store.provider();
        let cache = Cache::new("test", store, &config());
        let loads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let cache = cache.clone();
            let loads = loads.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_load("hot", None, || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Ok::<_, std::io::Error>(Some(User { id: 7, name: "hot".into() }))
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Some(User { id: 7, name: "hot".into() }), "{provider}");
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "{provider}: one load for 50 concurrent misses");
        // Later calls hit.
        let again: Option<User> =
            cache.get_or_load("hot", None, || async { Err::<Option<User>, _>("not called") }).await.unwrap();
        assert_eq!(again.map(|u| u.id), Some(7));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absence_is_cached_and_errors_are_not() {
    for store in stores() {
        let provider = store.provider();
        let cache = Cache::new("test", store, &config());
        let loads = AtomicUsize::new(0);
        for _ in 0..3 {
            let found: Option<User> = cache
                .get_or_load("missing", None, || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(None)
                })
                .await
                .unwrap();
            assert_eq!(found, None);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "{provider}: the absence is remembered");

        let err = cache.get_or_load::<User, _, _, _>("flaky", None, || async { Err("database down") }).await;
        assert_eq!(err.unwrap_err(), "database down");
        let ok = cache.get_or_load("flaky", None, || async { Ok::<_, &str>(Some(5u32)) }).await.unwrap();
        assert_eq!(ok, Some(5), "{provider}: a failed load is not cached");
    }
}

/// A redis-server of the test's own.
struct Redis(Child);

impl Redis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self(child)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_makes_misses_and_loads_never_errors_and_recovers() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Redis::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    let config = CacheConfig { provider: "redis".into(), url: Some(url.clone()), ..config() };
    let store = microframework_cache::store_for(&config).unwrap();
    let cache = Cache::new("test", store, &config);
    cache.set("k", &1u32, None).await;
    assert_eq!(cache.get::<u32>("k").await, Some(1));

    drop(server);
    // Reads are misses, writes are skipped, loads run, nothing fails or hangs.
    assert_eq!(cache.get::<u32>("k").await, None);
    cache.set("k", &2u32, None).await;
    cache.delete("k").await;
    let loaded = cache.get_or_load("k", None, || async { Ok::<_, std::io::Error>(Some(3u32)) }).await.unwrap();
    assert_eq!(loaded, Some(3));
    assert!(cache.ping().await.is_err(), "the outage shows in the check");

    let _server = Redis::start(port);
    eventually("the cache reconnects", async || cache.ping().await.is_ok()).await;
    eventually("writes and reads reach Redis again", async || {
        cache.set("k", &4u32, None).await;
        cache.get::<u32>("k").await == Some(4)
    })
    .await;
}

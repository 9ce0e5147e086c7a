//! The cache in a running service, from outside: a handler reads through the cache, and with its
//! Redis unreachable the service still answers every request and stays ready, with the cache
//! shown as degraded; bad configuration is refused with the key named.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use microframework::StartupError;
use microframework::axum::Router;
use microframework::axum::extract::{Path, State};
use microframework::axum::routing::get;
use microframework::cache::{Cache, CachePlugin};
use microframework::prelude::*;
use microframework_testing::TestApp;

/// `GET /square/{n}` computes n² through the cache; `loads` counts the computations.
fn service(loads: Arc<AtomicUsize>) -> Service {
    Service::new("cache-it").plugin(CachePlugin::new()).router(move |ctx| {
        let cache = ctx.require::<Cache>()?;
        Ok(Router::new()
            .route(
                "/square/{n}",
                get(|State((cache, loads)): State<(Cache, Arc<AtomicUsize>)>, Path(n): Path<u64>| async move {
                    let value = cache
                        .get_or_load(&format!("square:{n}"), None, || async {
                            loads.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, std::convert::Infallible>(Some(n * n))
                        })
                        .await
                        .unwrap_or_default();
                    value.unwrap_or_default().to_string()
                }),
            )
            .with_state((cache, loads)))
    })
}

fn redis_yaml(url: &str) -> String {
    format!(
        "cache:\n  provider: redis\n  url: {url}\n  timeout: 100ms\n  key_prefix: \"cache-it-{}:\"\n",
        uuid::Uuid::new_v4().simple()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_read_through_redis() {
    let loads = Arc::new(AtomicUsize::new(0));
    let url = std::env::var("MF_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let app = TestApp::builder(service(loads.clone())).yaml(redis_yaml(&url)).spawn().await;
    for _ in 0..3 {
        assert_eq!(app.get("/square/12").await.text().await.unwrap(), "144");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1, "computed once, then read from Redis");
    let ready: serde_json::Value = app.get("/health/ready").await.json().await.unwrap();
    let check = ready["checks"].as_array().unwrap().iter().find(|c| c["name"] == "cache").unwrap().clone();
    assert_eq!(check["status"], "up", "{ready}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_degrades_but_fails_nothing() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let loads = Arc::new(AtomicUsize::new(0));
    let app =
        TestApp::builder(service(loads.clone())).yaml(redis_yaml(&format!("redis://127.0.0.1:{port}"))).spawn().await;
    for _ in 0..3 {
        let res = app.get("/square/3").await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "9");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 3, "every read falls through to the loader");
    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), 200, "a cache outage does not take the service out of rotation");
    let ready: serde_json::Value = res.json().await.unwrap();
    let check = ready["checks"].as_array().unwrap().iter().find(|c| c["name"] == "cache").unwrap().clone();
    assert_eq!(check["status"], "degraded", "{ready}");
    assert!(check["error"].as_str().is_some_and(|e| !e.is_empty()), "{ready}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("cache_errors_total"), "{metrics}");
    app.shutdown().await;
}

#[tokio::test]
async fn bad_cache_config_names_the_key() {
    for (yaml, key, expected) in [
        ("cache:\n  provider: memcache\n", "cache.provider", "one of memory, redis"),
        ("cache:\n  provider: redis\n", "cache.url", "Redis URL"),
        ("cache:\n  provider: redis\n  url: http://x\n", "cache.url", "redis://"),
        ("cache:\n  jitter: 2\n", "cache.jitter", "from 0 to 0.5"),
        ("cache:\n  default_ttl: 0s\n", "cache.default_ttl", "above zero"),
    ] {
        let err = TestApp::builder(service(Arc::default())).yaml(yaml).try_spawn().await.err().unwrap();
        assert!(matches!(err, StartupError::Config(_)), "{yaml}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(key) && text.contains(expected), "{yaml}: {text}");
    }
}

//! Message size, connection count and origin limits.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Server, closed, ping, recv, send};

#[tokio::test]
async fn an_oversize_message_closes_with_1009_and_the_service_keeps_serving() {
    let server = Server::start("websocket:\n  max_message_size: 1KiB\n").await;
    let mut bystander = server.connect().await;
    let mut ws = server.connect().await;
    // Just under the limit is fine.
    send(&mut ws, json!({"type": "ping", "id": "fits", "data": "x".repeat(900)})).await;
    assert_eq!(recv(&mut ws).await["id"], "fits");

    send(&mut ws, json!({"type": "ping", "data": "x".repeat(2048)})).await;
    assert_eq!(closed(&mut ws, Duration::from_secs(5)).await, Some(1009));
    ping(&mut bystander, "alive").await;
    let mut fresh = server.connect().await;
    ping(&mut fresh, "fresh").await;
    assert_eq!(server.app.get("/health/live").await.status(), 200);
    server.wait_connections(2, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn upgrades_beyond_max_connections_get_503() {
    let server = Server::start("websocket:\n  max_connections: 2\n").await;
    let mut a = server.connect().await;
    let _b = server.connect().await;
    let (status, body) = server.try_connect("/ws", &[]).await.expect_err("the third upgrade is refused");
    assert_eq!(status, 503);
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((problem["code"].as_str(), problem["status"].as_u64()), (Some("unavailable"), Some(503)));
    ping(&mut a, "unaffected").await;

    drop(a);
    server.wait_connections(1, Duration::from_secs(5)).await;
    let mut c = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match server.try_connect("/ws", &[]).await {
                Ok(ws) => break ws,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .expect("a slot frees up once a connection closes");
    ping(&mut c, "c").await;
}

#[tokio::test]
async fn origins_outside_the_allow_list_get_403() {
    let server = Server::start("websocket:\n  allowed_origins: [\"https://app.example\"]\n").await;
    let (status, body) = server.try_connect("/ws", &[("origin", "https://evil.example")]).await.expect_err("refused");
    assert_eq!(status, 403, "{body}");
    let mut ok = server.try_connect("/ws", &[("origin", "https://app.example")]).await.unwrap();
    ping(&mut ok, "o").await;
    let mut no_origin = server.connect().await;
    ping(&mut no_origin, "n").await;
}

#[tokio::test]
async fn plain_http_requests_get_a_problem() {
    let server = Server::start("").await;
    let res = server.app.get("/ws").await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("WebSocket"), "{body}");
}

//! Message size, connection count and origin limits.

use std::time::Duration;

use microframework_ws::DisconnectReason;
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

/// A member of `room` floods it with 4 KiB messages while another member reads nothing; returns
/// how many connections were cut off as slow consumers once `done` says so, or after `within`.
async fn flood_with_an_idle_member(yaml: &str, done: fn(usize) -> bool, within: Duration) -> usize {
    use futures_util::SinkExt;
    let server = Server::start(yaml).await;
    let mut idle = server.connect().await;
    crate::common::join(&mut idle, "room").await;
    let mut flooder = server.connect().await;
    crate::common::join(&mut flooder, "room").await;
    let text = "x".repeat(4096);
    // The server may read slower than this sends: TCP then blocks the sender, so it runs apart.
    let sender = tokio::spawn(async move {
        for _ in 0..300 {
            let msg = json!({"type": "say", "room": "room", "data": {"text": text}}).to_string();
            if flooder.send(tokio_tungstenite::tungstenite::Message::text(msg)).await.is_err() {
                break;
            }
        }
        flooder
    });
    let cut_off =
        || server.chat.closed.lock().unwrap().iter().filter(|c| c.kind == DisconnectReason::SlowConsumer).count();
    let deadline = tokio::time::Instant::now() + within;
    while !done(cut_off()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sender.abort();
    drop(idle);
    cut_off()
}

#[tokio::test]
async fn a_flooding_member_is_paced_so_the_others_are_not_cut_off() {
    // Unpaced, the flood overflows the idle member's queue: it is cut off as a slow consumer (the
    // flooder, reading nothing either, usually too).
    let unpaced = "websocket:\n  send_queue: 4\n  max_messages_per_second: 1000000\n  message_burst: 1000000\n";
    let cut = flood_with_an_idle_member(unpaced, |n| n >= 1, Duration::from_secs(20)).await;
    assert!(cut >= 1, "the scenario makes a slow consumer");
    // Paced at 5 messages a second, the server reads the flood no faster: nobody is cut off.
    let paced = "websocket:\n  send_queue: 4\n  max_messages_per_second: 5\n  message_burst: 5\n";
    assert_eq!(flood_with_an_idle_member(paced, |_| false, Duration::from_secs(2)).await, 0);
}

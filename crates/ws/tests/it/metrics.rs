//! The WebSocket metrics on `/metrics`.

use std::time::Duration;

use serde_json::json;

use crate::common::{Server, metric, ping, recv, send, send_text};

#[tokio::test]
async fn websocket_metrics_are_exported() {
    let server = Server::start("").await;
    let mut ws = server.connect().await;
    ping(&mut ws, "1").await;
    send_text(&mut ws, "nope").await;
    assert_eq!(recv(&mut ws).await["code"], "invalid_message");
    let text = server.metrics().await;
    assert!(metric(&text, "ws_connections", "") >= 1.0, "{text}");
    assert!(metric(&text, "ws_connections_total", "") >= 1.0);
    assert!(metric(&text, "ws_messages_in_total", "") >= 2.0);
    assert!(metric(&text, "ws_messages_out_total", "") >= 2.0);
    assert!(metric(&text, "ws_messages_dropped_total", "reason=\"invalid\"") >= 1.0);
    assert!(text.contains("# HELP ws_disconnects_total") || text.contains("# TYPE ws_disconnects_total"), "{text}");

    drop(ws);
    server.wait_connections(0, Duration::from_secs(5)).await;
    let text = server.metrics().await;
    assert!(metric(&text, "ws_disconnects_total", "reason=\"client\"") >= 1.0, "{text}");
    let _ = send;
    let _ = json!({});
}

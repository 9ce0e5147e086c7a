//! Shutdown closes every WebSocket with 1001 after the messages already queued.

use std::time::Duration;

use microframework_ws::Envelope;
use serde_json::json;

use crate::common::{Event, Server, join, next_event, recv};

#[tokio::test]
async fn shutdown_sends_1001_to_every_peer() {
    let server = Server::start("").await;
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut ws = server.connect().await;
        if i < 2 {
            join(&mut ws, "lobby").await;
        }
        clients.push(ws);
    }
    let url = server.ws_url("/ws");
    let Server { app, hub, chat } = server;
    // Queued just before shutdown: delivered before the close frame.
    assert_eq!(hub.broadcast("lobby", Envelope::new("bye")).delivered, 2);
    let stopping = tokio::spawn(app.shutdown());

    for (i, ws) in clients.iter_mut().enumerate() {
        if i < 2 {
            assert_eq!(recv(ws).await, json!({"type": "bye"}));
        }
        match next_event(ws, Duration::from_secs(5)).await {
            Event::Close(code) => assert_eq!(code, Some(1001), "client {i}"),
            other => panic!("client {i}: expected a close frame, got {other:?}"),
        }
    }
    // The open connections must not hold the shutdown up (30 s bounds a hang, not a timing check).
    tokio::time::timeout(Duration::from_secs(30), stopping).await.expect("the service stops").unwrap();
    assert_eq!(hub.connection_count(), 0);
    assert!(chat.closed.lock().unwrap().iter().all(|c| c.kind == microframework_ws::DisconnectReason::Shutdown));
    assert_eq!(chat.closed.lock().unwrap().len(), 3);
    assert!(tokio_tungstenite::connect_async(url).await.is_err(), "no new connections after shutdown");
}

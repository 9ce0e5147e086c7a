//! Heartbeats: a client that answers nothing is dropped; one that answers pings stays.

use std::time::Duration;

use futures_util::StreamExt;
use microframework_ws::DisconnectReason;

use crate::common::{Server, closed, metric, ping};

#[tokio::test]
async fn a_client_that_stops_answering_pings_is_dropped_as_a_dead_peer() {
    let server = Server::start("websocket:\n  heartbeat_interval: 200ms\n  heartbeat_timeout: 600ms\n").await;
    // Never polled: tokio-tungstenite answers pings only while reading, so this one goes silent.
    let mut silent = server.connect().await;
    // Only reads (never sends a message): its automatic pongs keep it alive.
    let mut live = server.connect().await;
    let reading = tokio::spawn(async move {
        let until = tokio::time::Instant::now() + Duration::from_millis(1500);
        let mut pings = 0;
        while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(until, live.next()).await {
            if msg.is_ping() {
                pings += 1;
            }
        }
        (live, pings)
    });

    server.wait_connections(1, Duration::from_secs(3)).await;
    let (mut live, pings) = reading.await.unwrap();
    assert!(pings >= 4, "the server pings every 200ms ({pings} pings in 1.5s)");
    assert_eq!(server.hub.connection_count(), 1, "the reading client is still connected after 1.5s");
    ping(&mut live, "alive").await;

    let reasons: Vec<DisconnectReason> = server.chat.closed.lock().unwrap().iter().map(|c| c.kind).collect();
    assert_eq!(reasons, [DisconnectReason::DeadPeer]);
    let text = server.metrics().await;
    assert!(metric(&text, "ws_disconnects_total", "reason=\"dead_peer\"") >= 1.0, "{text}");
    // The silent client finds pings, then a close frame with 1011 (or just the end).
    let code = closed(&mut silent, Duration::from_secs(5)).await;
    assert!(matches!(code, Some(1011) | None), "{code:?}");
}

//! A client that stops reading never stalls the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use microframework_ws::{BroadcastReport, DisconnectReason, OutMessage};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{Event, Server, Ws, closed, join, metric, next_event, recv, send};

const ROUNDS: usize = 100;
const PER_ROUND: usize = 4;

/// Reads text frames in the background, counting them.
fn counter(mut ws: Ws) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let task = tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            if matches!(msg, Message::Text(_)) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (count, task)
}

/// Broadcasts 64 KiB messages in rounds smaller than the queue, waiting each round for the
/// readers; returns the totals and the slowest round.
async fn pump(server: &Server, readers: &[Arc<AtomicUsize>]) -> (BroadcastReport, Duration) {
    let blob = OutMessage::json(&json!({"type": "blob", "data": "x".repeat(64 * 1024)})).unwrap();
    let mut total = BroadcastReport::default();
    let mut slowest = Duration::ZERO;
    for round in 1..=ROUNDS {
        let started = Instant::now();
        for _ in 0..PER_ROUND {
            let r = server.hub.broadcast("feed", blob.clone());
            total.delivered += r.delivered;
            total.dropped += r.dropped;
        }
        let want = round * PER_ROUND;
        while readers.iter().any(|c| c.load(Ordering::Relaxed) < want) {
            assert!(
                // Not a timing check: a hub that waited for the slow client would never deliver.
                started.elapsed() < Duration::from_secs(30),
                "round {round}: the reading clients stalled ({:?} of {want})",
                readers.iter().map(|c| c.load(Ordering::Relaxed)).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        slowest = slowest.max(started.elapsed());
    }
    (total, slowest)
}

async fn setup(server: &Server) -> (Ws, Vec<Arc<AtomicUsize>>) {
    let mut slow = server.connect().await;
    join(&mut slow, "feed").await;
    let mut readers = Vec::new();
    for _ in 0..2 {
        let mut ws = server.connect().await;
        join(&mut ws, "feed").await;
        readers.push(counter(ws).0);
    }
    (slow, readers)
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_without_stalling_the_others() {
    let server = Server::start("websocket:\n  send_queue: 8\n").await;
    let (mut slow, readers) = setup(&server).await;
    let (total, slowest) = pump(&server, &readers).await;
    println!("disconnect policy: {total:?}, slowest round {slowest:?}");
    assert!(total.dropped >= 1, "the slow client's queue overflowed: {total:?}");
    for r in &readers {
        assert_eq!(r.load(Ordering::Relaxed), ROUNDS * PER_ROUND, "every message reached the readers");
    }

    server.wait_connections(2, Duration::from_secs(30)).await;
    assert_eq!(server.hub.members("feed").len(), 2);
    let text = server.metrics().await;
    assert!(metric(&text, "ws_disconnects_total", "reason=\"slow_consumer\"") >= 1.0, "{text}");
    assert!(metric(&text, "ws_messages_dropped_total", "reason=\"slow_consumer\"") >= 1.0);
    assert!(server.chat.closed.lock().unwrap().iter().any(|c| c.kind == DisconnectReason::SlowConsumer));
    // What was buffered before the cut can still be read, then the connection ends.
    let code = closed(&mut slow, Duration::from_secs(20)).await;
    assert!(matches!(code, None | Some(1008)), "{code:?}");
}

#[tokio::test]
async fn drop_newest_drops_for_the_slow_client_only() {
    let server = Server::start("websocket:\n  send_queue: 8\n  slow_consumer: drop_newest\n").await;
    let (mut slow, readers) = setup(&server).await;
    let (total, slowest) = pump(&server, &readers).await;
    println!("drop_newest policy: {total:?}, slowest round {slowest:?}");
    assert!(total.dropped >= 1, "{total:?}");
    for r in &readers {
        assert_eq!(r.load(Ordering::Relaxed), ROUNDS * PER_ROUND);
    }
    assert_eq!(server.hub.connection_count(), 3, "the slow client stays connected");
    let text = server.metrics().await;
    assert!(metric(&text, "ws_messages_dropped_total", "reason=\"queue_full\"") >= 1.0, "{text}");

    // Once it reads again, it gets what was queued and is fully usable.
    let mut received = 0;
    while let Ok(Event::Json(msg)) =
        tokio::time::timeout(Duration::from_secs(1), next_event(&mut slow, Duration::from_secs(5))).await
    {
        assert_eq!(msg["type"], "blob");
        received += 1;
    }
    assert!(received > 8 && received < ROUNDS * PER_ROUND, "{received}");
    send(&mut slow, json!({"type": "ping", "id": "back"})).await;
    assert_eq!(recv(&mut slow).await, json!({"type": "pong", "id": "back"}));
}

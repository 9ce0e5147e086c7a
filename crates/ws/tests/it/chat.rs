//! Rooms and broadcasting through the test chat.

use std::time::Duration;

use microframework_ws::Envelope;
use serde_json::json;

use crate::common::{Event, Server, join, next_event, ping, recv, send};

#[tokio::test]
async fn two_clients_in_a_room_both_receive_a_broadcast() {
    let server = Server::start("").await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    let mut outsider = server.connect().await;
    join(&mut a, "lobby").await;
    join(&mut b, "lobby").await;
    assert_eq!(server.hub.members("lobby").len(), 2);

    send(&mut a, json!({"type": "say", "room": "lobby", "data": {"text": "hello"}})).await;
    for ws in [&mut a, &mut b] {
        let msg = recv(ws).await;
        assert_eq!((msg["type"].as_str(), msg["room"].as_str()), (Some("said"), Some("lobby")));
        assert_eq!(msg["data"]["text"], "hello");
    }
    // The outsider got nothing: its first message is the answer to its own ping.
    ping(&mut outsider, "o1").await;

    // Server-side pushes reach the room too, serialised once.
    let report = server.hub.broadcast("lobby", Envelope::new("news").with_data(json!(42)));
    assert_eq!((report.delivered, report.dropped), (2, 0));
    for ws in [&mut a, &mut b] {
        assert_eq!(recv(ws).await, json!({"type": "news", "data": 42}));
    }
}

#[tokio::test]
async fn joining_is_authorised_and_leaving_stops_delivery() {
    let server = Server::start("").await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;

    send(&mut a, json!({"type": "join", "room": "private:ops", "id": "p"})).await;
    let err = recv(&mut a).await;
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str(), err["id"].as_str()),
        (Some("error"), Some("permission_denied"), Some("p"))
    );
    assert!(server.hub.members("private:ops").is_empty());

    // Saying in a room one has not joined is refused by the handler, with the message id.
    send(&mut a, json!({"type": "say", "room": "lobby", "id": "s1", "data": {"text": "x"}})).await;
    let err = recv(&mut a).await;
    assert_eq!((err["code"].as_str(), err["id"].as_str()), (Some("permission_denied"), Some("s1")));

    join(&mut a, "lobby").await;
    join(&mut b, "lobby").await;
    send(&mut b, json!({"type": "leave", "room": "lobby", "id": "l"})).await;
    assert_eq!(recv(&mut b).await, json!({"type": "left", "room": "lobby", "id": "l"}));
    send(&mut a, json!({"type": "say", "room": "lobby", "data": {"text": "still here?"}})).await;
    assert_eq!(recv(&mut a).await["type"], "said");
    ping(&mut b, "b1").await;

    // Closing a connection removes it from its rooms.
    drop(a);
    server.wait_connections(1, Duration::from_secs(5)).await;
    assert!(server.hub.rooms().is_empty(), "{:?}", server.hub.rooms());
    let closed = server.chat.closed.lock().unwrap().clone();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].kind, microframework_ws::DisconnectReason::Client);
    // The room limit applies to clients' joins.
    let server = Server::start("websocket:\n  max_rooms_per_connection: 2\n").await;
    let mut c = server.connect().await;
    join(&mut c, "r1").await;
    join(&mut c, "r2").await;
    join(&mut c, "r2").await;
    send(&mut c, json!({"type": "join", "room": "r3"})).await;
    match next_event(&mut c, Duration::from_secs(5)).await {
        Event::Json(v) => assert_eq!(v["code"], "permission_denied", "{v}"),
        other => panic!("{other:?}"),
    }
}

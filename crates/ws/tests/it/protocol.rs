//! Envelopes: validation, error envelopes, built-in types, handler errors and panics.

use std::time::Duration;

use futures_util::SinkExt;
use microframework_ws::DisconnectReason;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{Server, closed, ping, recv, send, send_text};

#[tokio::test]
async fn invalid_messages_get_error_envelopes_and_the_connection_stays_usable() {
    let server = Server::start("").await;
    let mut ws = server.connect().await;

    send_text(&mut ws, "this is not json").await;
    let err = recv(&mut ws).await;
    assert_eq!((err["type"].as_str(), err["code"].as_str()), (Some("error"), Some("invalid_message")));
    assert!(err["message"].as_str().unwrap().contains("JSON"), "{err}");
    assert!(err.get("id").is_none());
    ping(&mut ws, "after-garbage").await;

    // A readable id is echoed even when the envelope is invalid.
    send(&mut ws, json!({"id": "m1", "data": {}})).await;
    let err = recv(&mut ws).await;
    assert_eq!((err["code"].as_str(), err["id"].as_str()), (Some("invalid_message"), Some("m1")));
    assert!(err["message"].as_str().unwrap().contains("type"), "{err}");

    for bad in [
        json!({"type": "", "id": "m2"}),
        json!({"type": "x".repeat(65), "id": "m2"}),
        json!({"type": "say", "room": "r".repeat(129), "id": "m2"}),
        json!({"type": "say", "room": "", "id": "m2"}),
        json!(["not", "an", "object"]),
        json!({"type": 42, "id": "m2"}),
        json!({"type": "join", "id": "m2"}),
    ] {
        send(&mut ws, bad.clone()).await;
        let err = recv(&mut ws).await;
        assert_eq!(err["code"], "invalid_message", "{bad} -> {err}");
    }

    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let err = recv(&mut ws).await;
    assert_eq!(err["code"], "unsupported_frame", "{err}");
    ping(&mut ws, "still-usable").await;
}

#[tokio::test]
async fn handler_errors_become_error_envelopes_with_stable_codes() {
    let server = Server::start("").await;
    let mut ws = server.connect().await;
    send(&mut ws, json!({"type": "fail", "id": "f1"})).await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"type": "error", "code": "custom_failure", "message": "it failed as asked", "id": "f1"})
    );
    send(&mut ws, json!({"type": "dance", "id": "d1"})).await;
    let err = recv(&mut ws).await;
    assert_eq!((err["code"].as_str(), err["id"].as_str()), (Some("unknown_type"), Some("d1")));
    send(&mut ws, json!({"type": "say", "id": "s1"})).await;
    assert_eq!(recv(&mut ws).await["code"], "bad_request", "a missing room, via require_room");
    ping(&mut ws, "p").await;

    // An error with a close code closes the connection after the error envelope.
    send(&mut ws, json!({"type": "kick", "id": "k"})).await;
    assert_eq!(recv(&mut ws).await["code"], "permission_denied");
    assert_eq!(closed(&mut ws, Duration::from_secs(5)).await, Some(4001));
}

#[tokio::test]
async fn ten_invalid_messages_in_a_row_close_the_connection() {
    let server = Server::start("").await;
    let mut ws = server.connect().await;
    // Valid messages in between reset the count.
    for _ in 0..9 {
        send_text(&mut ws, "{").await;
    }
    for _ in 0..9 {
        assert_eq!(recv(&mut ws).await["code"], "invalid_message");
    }
    ping(&mut ws, "reset").await;
    for _ in 0..9 {
        send_text(&mut ws, "{").await;
    }
    for _ in 0..9 {
        assert_eq!(recv(&mut ws).await["code"], "invalid_message");
    }
    ping(&mut ws, "still-open").await;
    for _ in 0..10 {
        send_text(&mut ws, "{").await;
    }
    assert_eq!(closed(&mut ws, Duration::from_secs(5)).await, Some(1008));
    server.wait_connections(0, Duration::from_secs(5)).await;
    assert_eq!(server.chat.closed.lock().unwrap()[0].kind, DisconnectReason::Policy);
}

#[tokio::test]
async fn a_panicking_handler_closes_only_its_connection() {
    let server = Server::start("").await;
    let mut bystander = server.connect().await;
    let mut ws = server.connect().await;
    send(&mut ws, json!({"type": "panic", "id": "boom"})).await;
    let err = recv(&mut ws).await;
    assert_eq!((err["code"].as_str(), err["id"].as_str()), (Some("internal"), Some("boom")));
    assert_eq!(closed(&mut ws, Duration::from_secs(5)).await, Some(1011));
    ping(&mut bystander, "ok").await;
    let mut fresh = server.connect().await;
    ping(&mut fresh, "fresh").await;
    server.wait_connections(2, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_panic_in_authorize_join_is_an_error_of_that_connection_only() {
    let server = Server::start("").await;
    let mut bystander = server.connect().await;
    let mut ws = server.connect().await;
    send(&mut ws, json!({"type": "join", "room": "panic", "id": "j1"})).await;
    let err = recv(&mut ws).await;
    assert_eq!((err["code"].as_str(), err["id"].as_str()), (Some("internal"), Some("j1")), "{err}");
    assert_eq!(closed(&mut ws, Duration::from_secs(5)).await, Some(1011));
    server.wait_connections(1, Duration::from_secs(5)).await;
    let reasons: Vec<_> = server.chat.closed.lock().unwrap().iter().map(|r| r.kind).collect();
    assert_eq!(reasons, [DisconnectReason::Error], "a handler panic is counted as `error`");
    ping(&mut bystander, "ok").await;
}

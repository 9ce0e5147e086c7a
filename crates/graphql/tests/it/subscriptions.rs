//! Subscriptions over WebSocket, fed by mutations sent over HTTP.

use serde_json::json;

use crate::common::{Incoming, Ws, eventually, query, spawn};

#[tokio::test]
async fn subscription_over_graphql_transport_ws() {
    let (app, lib) = spawn("").await;
    let mut ws = Ws::connect(&app, "graphql-transport-ws", None).await;
    ws.init(json!({})).await;
    ws.send(json!({
        "id": "1",
        "type": "subscribe",
        "payload": { "query": "subscription OnBook { bookAdded { id title author { name } } }" },
    }))
    .await;
    // The server subscribed to the channel once it ran the subscription resolver.
    eventually(|| lib.subscribers() == 1).await;

    let body = query(&app, r#"mutation { addBook(title: "Hyperion", authorId: 7) { id } }"#).await;
    assert_eq!(body["data"]["addBook"]["id"], 11, "{body}");

    let next = ws.recv_json().await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["id"], "1");
    assert_eq!(
        next["payload"]["data"]["bookAdded"],
        json!({ "id": 11, "title": "Hyperion", "author": { "name": "Author 7" } })
    );

    // The client completes the subscription: the server drops it.
    ws.send(json!({ "id": "1", "type": "complete" })).await;
    eventually(|| lib.subscribers() == 0).await;

    // Queries run over the same connection too.
    ws.send(json!({ "id": "2", "type": "subscribe", "payload": { "query": "{ book(id: 11) { title } }" } })).await;
    let mut got = Vec::new();
    loop {
        let msg = ws.recv_json().await;
        if msg["id"] == "2" {
            got.push(msg.clone());
            if msg["type"] == "complete" {
                break;
            }
        }
    }
    assert_eq!(got[0]["payload"]["data"]["book"]["title"], "Hyperion");

    // Subscriptions over HTTP GET are refused.
    let res = app.get("/graphql?query=subscription%20%7B%20bookAdded%20%7B%20id%20%7D%20%7D").await;
    assert_eq!(res.status(), 405);

    // Metrics: the subscription was counted once it ended (its name may be `other` when the
    // metrics test of this process has used up the names).
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("graphql_operations_total{")
            && l.contains("operation_type=\"subscription\"")
            && (l.contains("operation_name=\"OnBook\"") || l.contains("operation_name=\"other\""))
            && l.contains("outcome=\"ok\"")),
        "{text}"
    );
}

#[tokio::test]
async fn legacy_graphql_ws_protocol() {
    let (app, lib) = spawn("").await;
    let mut ws = Ws::connect(&app, "graphql-ws", None).await;
    ws.init(json!({})).await;
    ws.send(json!({ "id": "a", "type": "start", "payload": { "query": "subscription { bookAdded { title } }" } }))
        .await;
    eventually(|| lib.subscribers() == 1).await;
    query(&app, r#"mutation { addBook(title: "Solaris", authorId: 2) { id } }"#).await;
    let data = ws.recv_json().await;
    assert_eq!(data["type"], "data", "{data}");
    assert_eq!(data["payload"]["data"]["bookAdded"]["title"], "Solaris");
    ws.send(json!({ "id": "a", "type": "stop" })).await;
    eventually(|| lib.subscribers() == 0).await;
}

#[tokio::test]
async fn errors_in_subscriptions_are_graphql_errors() {
    let (app, _lib) = spawn("").await;
    let mut ws = Ws::connect(&app, "graphql-transport-ws", None).await;
    ws.init(json!(null)).await;
    ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { bookRemoved { id } }" } }))
        .await;
    let msg = ws.recv_json().await;
    assert_eq!(msg["type"], "next", "{msg}");
    assert_eq!(msg["payload"]["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
    // A message that is not a protocol message closes the connection with 4400.
    let mut bad = Ws::connect(&app, "graphql-transport-ws", None).await;
    bad.send(json!("not a message")).await;
    match bad.recv().await {
        Incoming::Closed(Some((code, _))) => assert_eq!(code, 4400),
        other => panic!("expected a close, got {other:?}"),
    }
    // Subscribing before connection_init is refused.
    let mut early = Ws::connect(&app, "graphql-transport-ws", None).await;
    early.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "{ books { id } }" } })).await;
    match early.recv().await {
        Incoming::Closed(Some((code, _))) => assert_eq!(code, 4401),
        other => panic!("expected a 4401 close, got {other:?}"),
    }
    assert_eq!(query(&app, "{ books { id } }").await["data"]["books"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn connection_init_must_come_in_time() {
    let (app, _lib) = spawn("graphql:\n  connection_init_timeout: 200ms\n").await;
    let mut ws = Ws::connect(&app, "graphql-transport-ws", None).await;
    match ws.recv().await {
        Incoming::Closed(Some((code, reason))) => {
            assert_eq!(code, 4408);
            assert!(reason.contains("initialisation timeout"), "{reason}");
        }
        other => panic!("expected a 4408 close, got {other:?}"),
    }
}

#[tokio::test]
async fn upgrades_need_a_graphql_subprotocol() {
    let (app, _lib) = spawn("").await;
    let url = format!("{}/graphql/ws", app.base_url().replacen("http", "ws", 1));
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
    // A plain GET is not an upgrade.
    let res = app.get("/graphql/ws").await;
    assert!(res.status().is_client_error(), "{}", res.status());
}

#[tokio::test]
async fn shutdown_closes_subscriptions() {
    let (app, _lib) = spawn("").await;
    let mut ws = Ws::connect(&app, "graphql-transport-ws", None).await;
    ws.init(json!({})).await;
    ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { bookAdded { id } }" } }))
        .await;
    let stopping = tokio::spawn(app.shutdown());
    match ws.recv().await {
        Incoming::Closed(Some((code, _))) => assert_eq!(code, 1001),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
    tokio::time::timeout(std::time::Duration::from_secs(10), stopping).await.unwrap().unwrap();
}

#[tokio::test]
async fn subscriptions_per_connection_are_capped_and_the_connection_stays() {
    let (app, lib) = spawn("graphql:\n  max_subscriptions_per_connection: 2\n").await;
    let mut ws = Ws::connect(&app, "graphql-transport-ws", None).await;
    ws.init(json!({})).await;
    let subscribe =
        |id: &str| json!({"id": id, "type": "subscribe", "payload": {"query": "subscription { bookAdded { id } }"}});
    ws.send(subscribe("1")).await;
    ws.send(subscribe("2")).await;
    eventually(|| lib.subscribers() == 2).await;
    // The third is refused with an error for its id; the others keep running.
    ws.send(subscribe("3")).await;
    let refused = ws.recv_json().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "3");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS", "{refused}");
    assert_eq!(lib.subscribers(), 2);
    // Completing one frees its place.
    ws.send(json!({"id": "1", "type": "complete"})).await;
    eventually(|| lib.subscribers() == 1).await;
    ws.send(subscribe("4")).await;
    eventually(|| lib.subscribers() == 2).await;
    query(&app, r#"mutation { addBook(title: "Dune", authorId: 1) { id } }"#).await;
    let mut ids = Vec::new();
    while ids.len() < 2 {
        let msg = ws.recv_json().await;
        if msg["type"] == "next" {
            ids.push(msg["id"].as_str().unwrap().to_owned());
        }
    }
    ids.sort();
    assert_eq!(ids, ["2", "4"]);
}

#[tokio::test]
async fn websocket_connections_beyond_the_cap_get_503() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (app, _lib) = spawn("graphql:\n  max_ws_connections: 1\n").await;
    let mut first = Ws::connect(&app, "graphql-transport-ws", None).await;
    first.init(json!({})).await;
    let url = format!("{}/graphql/ws", app.base_url().replacen("http", "ws", 1));
    let mut req = url.clone().into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 503);
            assert_eq!(res.headers()["retry-after"], "5");
        }
        other => panic!("expected 503, got {other:?}"),
    }
    // Closing the first frees its place.
    drop(first);
    let mut ok = false;
    for _ in 0..100 {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
        if tokio_tungstenite::connect_async(req).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ok, "a new connection is accepted once the first closed");
}

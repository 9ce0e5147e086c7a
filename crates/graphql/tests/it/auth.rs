//! JWT claims in resolvers: over HTTP from the Authorization header, over WebSocket from the
//! connection_init payload or the upgrade request.

use microframework_testing::TestApp;
use serde_json::json;

use crate::common::{Incoming, Library, Ws, first_code, jwt_yaml, post_with_token, query, service, spawn, token};

#[tokio::test]
async fn resolvers_see_the_claims_of_the_bearer_token() {
    let (app, _lib) = spawn(&jwt_yaml("")).await;
    let body = query(&app, "{ me }").await;
    assert_eq!(first_code(&body), "UNAUTHENTICATED", "{body}");
    assert!(body["data"].is_null());

    let (status, body) = post_with_token(&app, "{ me }", &token("alice", &[])).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["me"], "alice", "{body}");

    let (_, body) = post_with_token(&app, "{ adminOnly }", &token("alice", &[])).await;
    assert_eq!(first_code(&body), "FORBIDDEN", "{body}");
    let (_, body) = post_with_token(&app, "{ adminOnly }", &token("root", &["admin"])).await;
    assert_eq!(body["data"]["adminOnly"], true, "{body}");

    // GET carries the claims too.
    let res = app.client().get(app.url("/graphql?query=%7Bme%7D")).bearer_auth(token("bob", &[])).send().await.unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["data"]["me"], "bob");

    // An invalid token is refused by the HTTP layer before GraphQL runs.
    let (status, _) = post_with_token(&app, "{ books { id } }", "not.a.token").await;
    assert_eq!(status, 401);
}

async fn me_over(ws: &mut Ws) -> serde_json::Value {
    ws.send(json!({ "id": "me", "type": "subscribe", "payload": { "query": "{ me }" } })).await;
    let next = ws.recv_json().await;
    assert_eq!(next["type"], "next", "{next}");
    next["payload"].clone()
}

#[tokio::test]
async fn websocket_connections_authenticate_in_connection_init() {
    let (app, _lib) = spawn(&jwt_yaml("")).await;

    let mut ws = Ws::connect(&app, "graphql-transport-ws", None).await;
    ws.init(json!({ "Authorization": format!("Bearer {}", token("carol", &[])) })).await;
    assert_eq!(me_over(&mut ws).await["data"]["me"], "carol");

    let mut ws = Ws::connect(&app, "graphql-transport-ws", None).await;
    ws.init(json!({ "token": token("dave", &[]) })).await;
    assert_eq!(me_over(&mut ws).await["data"]["me"], "dave");

    // The upgrade request's header counts too.
    let mut ws = Ws::connect(&app, "graphql-transport-ws", Some(&token("erin", &[]))).await;
    ws.init(json!({})).await;
    assert_eq!(me_over(&mut ws).await["data"]["me"], "erin");

    // Without a token: UNAUTHENTICATED from the resolver.
    let mut ws = Ws::connect(&app, "graphql-transport-ws", None).await;
    ws.init(json!({})).await;
    let payload = me_over(&mut ws).await;
    assert_eq!(payload["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{payload}");

    // A bad token closes the connection with 4403.
    for bad in [json!({ "token": "not.a.token" }), json!({ "Authorization": "Basic abc" })] {
        let mut ws = Ws::connect(&app, "graphql-transport-ws", None).await;
        ws.send(json!({ "type": "connection_init", "payload": bad })).await;
        match ws.recv().await {
            Incoming::Closed(Some((code, _))) => assert_eq!(code, 4403),
            other => panic!("expected a 4403 close, got {other:?}"),
        }
    }
    let forged = microframework_auth::JwtSigner::hs256(b"another-secret-that-is-long-enough-00000000")
        .sign(&json!({ "sub": "mallory", "exp": 4_000_000_000u64 }))
        .unwrap();
    let mut ws = Ws::connect(&app, "graphql-transport-ws", None).await;
    ws.send(json!({ "type": "connection_init", "payload": { "token": forged } })).await;
    assert!(matches!(ws.recv().await, Incoming::Closed(Some((4403, _)))));
}

#[tokio::test]
async fn required_mode_refuses_anonymous_websocket_connections() {
    let yaml = jwt_yaml("    required: true\n");
    // The WebSocket path is public for the HTTP layer (browsers cannot set headers on an upgrade);
    // the connection authenticates in connection_init.
    let app = TestApp::builder(service(Library::new()).public_path("/graphql/ws")).yaml(yaml).spawn().await;

    let mut ws = Ws::connect(&app, "graphql-transport-ws", None).await;
    ws.send(json!({ "type": "connection_init", "payload": {} })).await;
    assert!(matches!(ws.recv().await, Incoming::Closed(Some((4403, _)))));

    let mut ws = Ws::connect(&app, "graphql-transport-ws", None).await;
    ws.init(json!({ "Authorization": format!("Bearer {}", token("frank", &[])) })).await;
    assert_eq!(me_over(&mut ws).await["data"]["me"], "frank");

    // Over HTTP the JWT layer itself requires the token.
    let res = app.client().post(app.url("/graphql")).json(&json!({ "query": "{ me }" })).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn without_jwt_configuration_tokens_are_ignored() {
    let (app, _lib) = spawn("").await;
    let mut ws = Ws::connect(&app, "graphql-transport-ws", None).await;
    ws.init(json!({ "token": "anything" })).await;
    let payload = me_over(&mut ws).await;
    assert_eq!(payload["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{payload}");
}

#[tokio::test]
async fn websocket_connections_end_when_their_token_expires() {
    let (app, _lib) = spawn(&jwt_yaml("    leeway_seconds: 0\n")).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let short = microframework_auth::JwtSigner::hs256(crate::common::SECRET.as_bytes())
        .sign(&json!({ "sub": "gina", "exp": now + 2 }))
        .unwrap();
    let mut ws = Ws::connect(&app, "graphql-transport-ws", None).await;
    ws.init(json!({ "token": short })).await;
    assert_eq!(me_over(&mut ws).await["data"]["me"], "gina");
    loop {
        match ws.recv().await {
            Incoming::Json(msg) => assert_eq!(msg["type"], "complete", "{msg}"),
            Incoming::Closed(Some((code, reason))) => {
                assert_eq!(code, 4403);
                assert!(reason.contains("expired"), "{reason}");
                break;
            }
            other => panic!("expected a 4403 close, got {other:?}"),
        }
    }
}

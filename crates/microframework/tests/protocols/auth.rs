//! One verifier, one policy: the WebSocket upgrade follows `auth.jwt.required`, and a token minted
//! for another audience or issuer is refused by every protocol.

use futures_util::{SinkExt, StreamExt};
use microframework::grpc::tonic::{Code, client::Grpc, codegen::http::uri::PathAndQuery};
use microframework_testing::TestApp;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::{RawCodec, close_code, service};

const SECRET: &str = "protocols-test-secret-of-at-least-32-bytes";

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn hs_token(sub: &str) -> String {
    microframework::auth::JwtSigner::hs256(SECRET.as_bytes()).sign(&json!({"sub": sub, "exp": now() + 300})).unwrap()
}

/// The HTTP status of a WebSocket upgrade of `url` (101 when it upgraded).
async fn upgrade_status(url: String, bearer: Option<&str>) -> u16 {
    let mut req = url.into_client_request().unwrap();
    if let Some(token) = bearer {
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, res)) => res.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status().as_u16(),
        Err(e) => panic!("the upgrade failed: {e}"),
    }
}

#[tokio::test]
async fn the_websocket_upgrade_follows_auth_jwt_required() {
    let required = format!("auth:\n  jwt:\n    secret: {SECRET}\n    required: true\n");
    let app = TestApp::builder(service()).yaml(required.clone()).spawn().await;
    let ws = format!("ws://{}/ws", app.local_addr());
    assert_eq!(upgrade_status(ws.clone(), None).await, 401, "anonymous upgrade under required: true");
    assert_eq!(upgrade_status(format!("{ws}?access_token=forged.token.here"), None).await, 401);
    assert_eq!(upgrade_status(format!("{ws}?access_token={}", hs_token("ada")), None).await, 101);
    assert_eq!(upgrade_status(ws.clone(), Some(&hs_token("ada"))).await, 101);
    // The other routes are still protected: the upgrade's exemption in the HTTP layer is the
    // endpoint's own business, not a hole.
    assert_eq!(app.get("/graphql?query={__typename}").await.status(), 401);

    // Marked public explicitly, either way, the endpoint takes anonymous clients.
    for public in ["websocket:\n  require_auth: false\n", "    public_paths: [\"/ws\"]\n"] {
        let app = TestApp::builder(service()).yaml(format!("{required}{public}")).spawn().await;
        let ws = format!("ws://{}/ws", app.local_addr());
        assert_eq!(upgrade_status(ws.clone(), None).await, 101, "{public}");
        // A token that is sent is still verified.
        assert_eq!(upgrade_status(format!("{ws}?access_token=forged.token.here"), None).await, 401, "{public}");
    }

    // Without required, anonymous upgrades are fine unless websocket.require_auth says otherwise.
    let optional = format!("auth:\n  jwt:\n    secret: {SECRET}\n");
    let app = TestApp::builder(service()).yaml(optional.clone()).spawn().await;
    assert_eq!(upgrade_status(format!("ws://{}/ws", app.local_addr()), None).await, 101);
    let app = TestApp::builder(service()).yaml(format!("{optional}websocket:\n  require_auth: true\n")).spawn().await;
    assert_eq!(upgrade_status(format!("ws://{}/ws", app.local_addr()), None).await, 401);
}

fn fixture(name: &str) -> String {
    format!("{}/../auth/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn a_token_for_another_audience_or_issuer_is_refused_by_every_protocol() {
    let yaml = format!(
        "auth:\n  jwt:\n    public_key: {}\n    issuer: https://idp.test/\n    audience: protocols\n",
        fixture("rsa_public.pem")
    );
    let app = TestApp::builder(service()).yaml(yaml).spawn().await;
    let signer =
        microframework::auth::JwtSigner::from_pem("RS256", &std::fs::read(fixture("rsa_private.pem")).unwrap())
            .unwrap();
    let sign =
        |iss: &str, aud: &str| signer.sign(&json!({"sub": "ada", "iss": iss, "aud": aud, "exp": now() + 300})).unwrap();
    let good = sign("https://idp.test/", "protocols");
    let cases = [
        ("another audience", sign("https://idp.test/", "billing")),
        ("another issuer", sign("https://evil.test/", "protocols")),
    ];

    // HTTP (the GraphQL endpoint behind the default stack).
    let query = json!({"query": "{ greeting(name: \"Ada\") }"});
    let post = |token: String| app.client().post(app.url("/graphql")).bearer_auth(token).json(&query).send();
    assert_eq!(post(good.clone()).await.unwrap().status(), 200);
    for (what, token) in &cases {
        let res = post(token.clone()).await.unwrap();
        assert_eq!(res.status(), 401, "HTTP, {what}");
        assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"), "{what}");
    }

    // gRPC: the token is checked before routing, so an unknown method shows it.
    let channel = microframework::grpc::connect(format!("http://{}", app.grpc_addr().unwrap())).await.unwrap();
    let call = |token: String| {
        let mut client = Grpc::new(channel.clone());
        async move {
            client.ready().await.unwrap();
            let mut req = microframework::grpc::tonic::Request::new(Vec::new());
            req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
            client.unary(req, PathAndQuery::from_static("/test.v1.Nothing/Call"), RawCodec).await.unwrap_err()
        }
    };
    assert_eq!(call(good.clone()).await.code(), Code::Unimplemented, "a good token reaches routing");
    for (what, token) in &cases {
        assert_eq!(call(token.clone()).await.code(), Code::Unauthenticated, "gRPC, {what}");
    }

    // GraphQL subscriptions: the token of connection_init.
    let addr = app.local_addr();
    let init = |token: String| async move {
        let mut req = format!("ws://{addr}/graphql/ws").into_client_request().unwrap();
        req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
        socket.send(Message::text(init.to_string())).await.unwrap();
        socket
    };
    let mut accepted = init(good.clone()).await;
    let ack = tokio::time::timeout(std::time::Duration::from_secs(5), accepted.next()).await.unwrap().unwrap().unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"), "{ack:?}");
    for (what, token) in &cases {
        let mut refused = init(token.clone()).await;
        assert_eq!(close_code(&mut refused).await, 4403, "GraphQL connection_init, {what}");
    }

    // WebSocket: the upgrade, with the token in the query or the header.
    let ws = format!("ws://{}/ws", app.local_addr());
    assert_eq!(upgrade_status(format!("{ws}?access_token={good}"), None).await, 101);
    for (what, token) in &cases {
        assert_eq!(upgrade_status(format!("{ws}?access_token={token}"), None).await, 401, "WebSocket query, {what}");
        assert_eq!(upgrade_status(ws.clone(), Some(token)).await, 401, "WebSocket header, {what}");
    }
}

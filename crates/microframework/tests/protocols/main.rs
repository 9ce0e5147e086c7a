//! gRPC, GraphQL and WebSocket through `Service`: own port and shared port for gRPC, health
//! tied to readiness, a GraphQL query with its limits, and WebSocket peers closed with 1001 on
//! shutdown.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use microframework::grpc::GrpcBuilder;
use microframework::grpc::tonic_health::pb::HealthCheckRequest;
use microframework::grpc::tonic_health::pb::health_check_response::ServingStatus;
use microframework::grpc::tonic_health::pb::health_client::HealthClient;
use microframework::prelude::*;
use microframework::ws::{Connection, Envelope, Hub, WsError, WsHandler, async_trait};
use microframework_testing::TestApp;
use tokio_tungstenite::tungstenite::Message;

mod auth;

struct Echo;

#[async_trait]
impl WsHandler for Echo {
    async fn on_message(&self, conn: &Connection, msg: Envelope) -> Result<(), WsError> {
        conn.send(msg.reply("echo")).map_err(|e| WsError::internal(e.to_string()))
    }
}

struct Query;

#[async_graphql::Object]
impl Query {
    async fn greeting(&self, name: String) -> String {
        format!("Hello, {name}!")
    }
}

pub(crate) fn service() -> Service {
    Service::new("protocols").grpc(|_| Ok(GrpcBuilder::new())).websocket(Hub::new(), Echo).graphql(|_| {
        Ok(async_graphql::Schema::build(Query, async_graphql::EmptyMutation, async_graphql::EmptySubscription))
    })
}

async fn health(addr: String) -> ServingStatus {
    let channel = microframework::grpc::connect(addr).await.unwrap();
    let res = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await.unwrap();
    ServingStatus::try_from(res.into_inner().status).unwrap()
}

#[tokio::test]
async fn grpc_on_its_own_port_with_health_tied_to_readiness() {
    let app = TestApp::builder(service()).spawn().await;
    let grpc = app.grpc_addr().expect("gRPC listens on its own port");
    assert_ne!(grpc.port(), app.local_addr().port());
    let url = format!("http://{grpc}");
    let mut status = health(url.clone()).await;
    for _ in 0..50 {
        if status == ServingStatus::Serving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = health(url.clone()).await;
    }
    assert_eq!(status, ServingStatus::Serving);
    // The REST side keeps serving health and metrics.
    assert_eq!(app.get("/health/ready").await.status(), 200);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("grpc_server_handled_total"), "{metrics}");
}

#[tokio::test]
async fn grpc_beside_rest_on_the_same_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = TestApp::builder(service())
        .set("server.port", port.to_string())
        .set("grpc.port", port.to_string())
        .spawn()
        .await;
    assert!(app.grpc_addr().is_none());
    assert_eq!(app.local_addr().port(), port);
    assert_eq!(app.get("/health/live").await.status(), 200);
    let res = app.get("/nope").await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json", "REST keeps its own stack");
    assert_eq!(health(format!("http://127.0.0.1:{port}")).await, ServingStatus::Serving);
}

/// Speaks just enough HTTP/2 to see whether the server sends keep-alive PINGs: the client
/// preface, an empty SETTINGS frame, then frame headers until a PING arrives or `within` passes.
async fn server_pings(addr: std::net::SocketAddr, within: Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await.unwrap();
    let read_frames = async {
        loop {
            let mut header = [0u8; 9];
            if tcp.read_exact(&mut header).await.is_err() {
                return false;
            }
            let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let mut payload = vec![0u8; len];
            if tcp.read_exact(&mut payload).await.is_err() {
                return false;
            }
            // PING (type 6) without the ACK flag.
            if header[3] == 6 && header[4] & 1 == 0 {
                return true;
            }
        }
    };
    tokio::time::timeout(within, read_frames).await.unwrap_or(false)
}

#[tokio::test]
async fn grpc_http2_keepalive_pings_follow_the_configuration() {
    let app = TestApp::builder(service()).set("grpc.http2_keepalive_interval", "1s").spawn().await;
    assert!(server_pings(app.grpc_addr().unwrap(), Duration::from_secs(10)).await, "a PING within 10 s");
    // Off by default.
    let app = TestApp::builder(service()).spawn().await;
    assert!(!server_pings(app.grpc_addr().unwrap(), Duration::from_millis(2500)).await, "no PING by default");
    // On the shared port too.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = TestApp::builder(service())
        .set("server.port", port.to_string())
        .set("grpc.port", port.to_string())
        .set("grpc.http2_keepalive_interval", "1s")
        .spawn()
        .await;
    assert!(server_pings(app.local_addr(), Duration::from_secs(10)).await, "a PING on the shared port");
}

#[tokio::test]
async fn websocket_peers_get_1001_on_shutdown() {
    let app = TestApp::builder(service()).spawn().await;
    let url = format!("ws://{}/ws", app.local_addr());
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    socket.send(Message::text(r#"{"type":"hello","data":{"n":1}}"#)).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.unwrap().unwrap().unwrap();
    let reply: serde_json::Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(reply["type"], "echo");
    let stopping = tokio::spawn(app.shutdown());
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.unwrap().code), 1001);
    stopping.await.unwrap();
}

#[tokio::test]
async fn graphql_queries_limits_and_offline_page() {
    let app = TestApp::builder(service()).yaml("graphql:\n  max_depth: 3\n").spawn().await;
    let res = app.post_json("/graphql", &serde_json::json!({"query": "{ greeting(name: \"Ada\") }"})).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["data"]["greeting"], "Hello, Ada!");
    let res = app.post_json("/graphql", &serde_json::json!({"query": "{ greeting(name: "})).await;
    assert!(res.status().is_client_error() || res.status() == 200, "{}", res.status());
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["errors"][0]["message"].is_string(), "{body}");
    let page = app.client().get(app.url("/graphql")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(!html.contains("https://"), "the IDE loads nothing from the internet");
}

#[tokio::test]
async fn graphiql_loads_without_a_token_when_tokens_are_required() {
    const SECRET: &str = "protocols-test-secret-that-is-long-enough-01";
    let yaml = format!("auth:\n  jwt:\n    secret: {SECRET}\n    required: true\n");
    let app = TestApp::builder(service()).yaml(yaml).spawn().await;
    let get = |path: &str, accept: &str| {
        let req = app.client().get(app.url(path)).header("accept", accept);
        async move { req.send().await.unwrap() }
    };

    // The IDE and its assets: no data, and a browser cannot attach a token to them.
    let page = get("/graphql", "text/html,*/*;q=0.8").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/graphql/assets/graphiql.min.js"), "{html}");
    let script = get("/graphql/assets/graphiql.min.js", "*/*").await;
    assert_eq!(script.status(), 200);

    // Operations still need the token, whatever the Accept header says.
    for (path, accept) in [
        ("/graphql?query=%7B__typename%7D", "text/html"),
        ("/graphql?query=%7B__typename%7D", "application/json"),
        ("/graphql", "application/json"),
    ] {
        let res = get(path, accept).await;
        assert_eq!(res.status(), 401, "GET {path} ({accept})");
        assert!(res.headers().contains_key("www-authenticate"));
    }
    let query = serde_json::json!({"query": "{ greeting(name: \"Ada\") }"});
    let res = app.client().post(app.url("/graphql")).header("accept", "text/html").json(&query).send().await.unwrap();
    assert_eq!(res.status(), 401);
    // A bad token on the page is refused too: a token that is sent is always verified.
    let res =
        app.client().get(app.url("/graphql")).header("accept", "text/html").bearer_auth("not.a.token").send().await;
    assert_eq!(res.unwrap().status(), 401);

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let token = microframework::auth::JwtSigner::hs256(SECRET.as_bytes())
        .sign(&serde_json::json!({"sub": "ada", "aud": "protocols", "exp": now + 300}))
        .unwrap();
    let res = app.client().post(app.url("/graphql")).bearer_auth(token).json(&query).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["data"]["greeting"], "Hello, Ada!", "{body}");
}

/// A JWKS endpoint serving the RSA test key of `microframework-auth` (kid `k1`), counting fetches.
async fn jwks_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use microframework::http::axum;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../auth/tests/fixtures/rsa_public.pem")).unwrap();
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(&pem).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_decoding_key(&key, Some(jsonwebtoken::Algorithm::RS256)).unwrap();
    jwk.common.key_id = Some("k1".to_owned());
    let body = serde_json::json!({ "keys": [jwk] });
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move { axum::Json(body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hits)
}

#[tokio::test]
async fn graphql_subscriptions_and_websocket_upgrades_share_the_http_layers_jwks_keys() {
    use std::sync::atomic::Ordering;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (jwks_url, hits) = jwks_server().await;
    let app = TestApp::builder(service())
        .yaml(format!("auth:\n  jwt:\n    jwks_url: {jwks_url}\n    audience: protocols\n"))
        .spawn()
        .await;
    let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../auth/tests/fixtures/rsa_private.pem")).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let token = microframework::auth::JwtSigner::from_pem("RS256", &pem)
        .unwrap()
        .with_kid("k1")
        .sign(&serde_json::json!({"sub": "ada", "aud": "protocols", "exp": now + 300}))
        .unwrap();
    let fetched_at_start = hits.load(Ordering::SeqCst);
    assert_eq!(fetched_at_start, 1, "the HTTP layer fetches the keys once at start-up");

    // Over HTTP and over the subscription WebSocket the token verifies with the same keys.
    let query = serde_json::json!({"query": "{ greeting(name: \"Ada\") }"});
    let res = app.client().post(app.url("/graphql")).bearer_auth(&token).json(&query).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let mut req = format!("ws://{}/graphql/ws", app.local_addr()).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let init = serde_json::json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
    socket.send(Message::text(init.to_string())).await.unwrap();
    let ack = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.unwrap().unwrap().unwrap();
    let ack: serde_json::Value = serde_json::from_str(ack.to_text().unwrap()).unwrap();
    assert_eq!(ack["type"], "connection_ack", "{ack}");

    // The WebSocket upgrade verifies `?access_token=` with the same keys too.
    let ws = format!("ws://{}/ws?access_token={token}", app.local_addr());
    let (_peer, res) = tokio_tungstenite::connect_async(ws).await.unwrap();
    assert_eq!(res.status(), 101);

    assert_eq!(hits.load(Ordering::SeqCst), fetched_at_start, "no second verifier fetched the JWKS");
}

/// Sends and receives already encoded messages, so that any path can be called.
#[derive(Clone, Copy, Default)]
pub(crate) struct RawCodec;

impl microframework::grpc::tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl microframework::grpc::tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = microframework::grpc::tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut microframework::grpc::tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Self::Error> {
        use bytes::BufMut as _;
        dst.put_slice(&item);
        Ok(())
    }
}

impl microframework::grpc::tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = microframework::grpc::tonic::Status;
    fn decode(
        &mut self,
        src: &mut microframework::grpc::tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, Self::Error> {
        use bytes::Buf as _;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

#[tokio::test]
async fn grpc_calls_share_the_http_rate_limit_buckets() {
    use microframework::grpc::tonic::{Code, client::Grpc, codegen::http::uri::PathAndQuery};
    let yaml = "http:\n  rate_limit:\n    enabled: true\n    per_ip: { requests_per_second: 1, burst: 3 }\n";
    let app = TestApp::builder(service()).yaml(yaml).spawn().await;
    let grpc = app.grpc_addr().expect("gRPC listens on its own port");
    let channel = microframework::grpc::connect(format!("http://{grpc}")).await.unwrap();
    let mut client = Grpc::new(channel);
    let call = |client: &mut Grpc<_>| {
        let mut client = client.clone();
        async move {
            client.ready().await.unwrap();
            let path = PathAndQuery::from_static("/test.v1.Nothing/Call");
            client.unary(microframework::grpc::tonic::Request::new(Vec::new()), path, RawCodec).await.unwrap_err()
        }
    };
    // A REST request takes a token from the client's bucket too.
    assert_eq!(app.get("/no-such-route").await.status(), 404);
    let mut passed = 0;
    let refused = loop {
        let status = call(&mut client).await;
        if status.code() != Code::Unimplemented {
            break status;
        }
        passed += 1;
        assert!(passed < 50, "50 calls in a row went through a limit of one per second");
    };
    assert!(passed >= 2, "{passed}");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(refused.message(), "Rate limit exceeded; retry in 1 second.");
    // Health is never limited.
    assert_eq!(health(format!("http://{grpc}")).await, ServingStatus::Serving);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("grpc_code=\"RESOURCE_EXHAUSTED\""), "{metrics}");
}

/// Waits for the close frame of `socket`, completes the closing handshake and returns the code.
pub(crate) async fn close_code<S>(socket: &mut S) -> u16
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(15), socket.next()).await.expect("no close frame") {
            Some(Ok(Message::Close(frame))) => {
                // Reading on sends tungstenite's close reply; the stream then ends.
                let _ = tokio::time::timeout(Duration::from_secs(5), socket.next()).await;
                return frame.map_or(1005, |f| u16::from(f.code));
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn long_lived_connections_are_served_until_the_drain_delay_ends() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = TestApp::builder(service()).yaml("shutdown:\n  drain_delay: 3s\n").spawn().await;
    let (mut peer, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.local_addr())).await.unwrap();
    let mut req = format!("ws://{}/graphql/ws", app.local_addr()).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut subscriber, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    subscriber.send(Message::text(r#"{"type":"connection_init","payload":{}}"#)).await.unwrap();
    let next_json = |msg: Option<Result<Message, _>>| -> serde_json::Value {
        serde_json::from_str(msg.unwrap().unwrap().to_text().unwrap()).unwrap()
    };
    let ack = tokio::time::timeout(Duration::from_secs(5), subscriber.next()).await.unwrap();
    assert_eq!(next_json(ack)["type"], "connection_ack");

    // SIGTERM: readiness fails at once, but both connections keep being served during the delay.
    app.context().lifecycle().shutdown();
    assert_eq!(app.get("/health/ready").await.status(), 503);
    peer.send(Message::text(r#"{"type":"hello","data":{"n":2}}"#)).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(2), peer.next()).await.unwrap();
    assert_eq!(next_json(reply)["type"], "echo");
    let op = r#"{"id":"1","type":"subscribe","payload":{"query":"{ greeting(name: \"Ada\") }"}}"#;
    subscriber.send(Message::text(op)).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(2), subscriber.next()).await.unwrap();
    assert_eq!(next_json(next)["payload"]["data"]["greeting"], "Hello, Ada!");

    // When the listeners stop accepting, both are closed with 1001.
    assert_eq!(close_code(&mut peer).await, 1001);
    assert_eq!(close_code(&mut subscriber).await, 1001);
    app.shutdown().await;
}

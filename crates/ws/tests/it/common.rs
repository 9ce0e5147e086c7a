use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use microframework::Service;
use microframework::auth::JwtVerifier;
use microframework_testing::TestApp;
use microframework_ws::{CloseReason, Connection, Envelope, Hub, WsError, WsHandler, async_trait};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Message, http};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) const SECRET: &str = "ws-test-secret-that-is-long-enough-0123456789";

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The test chat: `say` broadcasts to a room the sender is in; a few types exercise errors.
#[derive(Clone, Default)]
pub(crate) struct Chat {
    pub(crate) closed: Arc<Mutex<Vec<CloseReason>>>,
}

#[async_trait]
impl WsHandler for Chat {
    async fn on_connect(&self, conn: &Connection) -> Result<(), WsError> {
        if conn.claims().and_then(|c| c.subject()) == Some("banned") {
            return Err(WsError::forbidden("banned"));
        }
        Ok(())
    }

    async fn on_message(&self, conn: &Connection, msg: Envelope) -> Result<(), WsError> {
        match msg.kind.as_str() {
            "say" => {
                let room = msg.require_room()?;
                if !conn.rooms().iter().any(|r| r == room) {
                    return Err(WsError::forbidden("join the room first"));
                }
                let text: String = msg.data_as::<Value>()?.get("text").and_then(Value::as_str).unwrap_or("").into();
                let out = Envelope::new("said").with_room(room).with_data(json!({"from": conn.id(), "text": text}));
                conn.hub().broadcast(room, out);
                Ok(())
            }
            "whoami" => {
                let sub = conn.claims().and_then(|c| c.subject()).unwrap_or("anonymous").to_owned();
                let _ = conn.send(msg.reply("you").with_data(json!(sub)));
                Ok(())
            }
            "fail" => Err(WsError::new("custom_failure", "it failed as asked")),
            "kick" => Err(WsError::forbidden("bye").close(4001)),
            "panic" => panic!("the handler panicked on purpose"),
            other => Err(WsError::unknown_type(other)),
        }
    }

    async fn on_close(&self, _conn: &Connection, reason: CloseReason) {
        self.closed.lock().unwrap().push(reason);
    }

    async fn authorize_join(&self, _conn: &Connection, room: &str) -> bool {
        assert!(room != "panic", "authorize_join panicked on purpose");
        !room.starts_with("private:")
    }
}

pub(crate) struct Server {
    pub(crate) app: TestApp,
    pub(crate) hub: Hub,
    pub(crate) chat: Chat,
}

impl Server {
    pub(crate) async fn start(yaml: &str) -> Self {
        Self::start_with(yaml, None).await
    }

    pub(crate) async fn start_with(yaml: &str, verifier: Option<JwtVerifier>) -> Self {
        let hub = Hub::new();
        let chat = Chat::default();
        let service = Service::new("ws-it").component(hub.component()).router({
            let (hub, chat) = (hub.clone(), chat.clone());
            move |ctx| microframework_ws::router(hub, chat, ctx, verifier)
        });
        let app = TestApp::builder(service).yaml(yaml).spawn().await;
        Self { app, hub, chat }
    }

    pub(crate) fn ws_url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.app.base_url().replacen("http://", "ws://", 1))
    }

    pub(crate) async fn connect(&self) -> Ws {
        self.connect_to("/ws").await
    }

    pub(crate) async fn connect_to(&self, path_and_query: &str) -> Ws {
        match self.try_connect(path_and_query, &[]).await {
            Ok(ws) => ws,
            Err((status, body)) => panic!("upgrade refused with {status}: {body}"),
        }
    }

    /// Connects, or returns the refusal's status and body.
    pub(crate) async fn try_connect(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Ws, (u16, String)> {
        let mut req = self.ws_url(path_and_query).into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                let status = res.status().as_u16();
                let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                let body = String::from_utf8_lossy(res.body().as_deref().unwrap_or_default()).into_owned();
                assert_eq!(ct, "application/problem+json", "refusals are problem+json: {body}");
                Err((status, body))
            }
            Err(e) => panic!("connecting failed: {e}"),
        }
    }

    /// Waits until the hub has `n` connections.
    pub(crate) async fn wait_connections(&self, n: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.hub.connection_count() != n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} connections, have {}",
                self.hub.connection_count()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) async fn metrics(&self) -> String {
        self.app.get("/metrics").await.text().await.unwrap()
    }
}

/// What a client read.
#[derive(Debug)]
pub(crate) enum Event {
    Json(Value),
    Close(Option<u16>),
    /// The connection ended without a close frame (or with a transport error).
    End,
}

/// The next JSON message or close, skipping pings and pongs; panics after `within`.
pub(crate) async fn next_event(ws: &mut Ws, within: Duration) -> Event {
    let read = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return Event::Json(serde_json::from_str(t.as_str()).unwrap()),
                Some(Ok(Message::Close(frame))) => return Event::Close(frame.map(|f| u16::from(f.code))),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(_))) => panic!("the server sent a binary frame"),
                Some(Err(_)) | None => return Event::End,
            }
        }
    };
    match tokio::time::timeout(within, read).await {
        Ok(e) => e,
        Err(_) => panic!("nothing received within {within:?}"),
    }
}

/// The next JSON message; panics on a close or after 5 s.
pub(crate) async fn recv(ws: &mut Ws) -> Value {
    match next_event(ws, Duration::from_secs(5)).await {
        Event::Json(v) => v,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Reads until the connection closes, returning the close code (`None`: no close frame).
pub(crate) async fn closed(ws: &mut Ws, within: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match next_event(ws, deadline.saturating_duration_since(tokio::time::Instant::now())).await {
            Event::Json(_) => continue,
            Event::Close(code) => return code,
            Event::End => return None,
        }
    }
}

pub(crate) async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

pub(crate) async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
}

/// Joins `room` and waits for the acknowledgement.
pub(crate) async fn join(ws: &mut Ws, room: &str) {
    send(ws, json!({"type": "join", "room": room, "id": "j"})).await;
    let ack = recv(ws).await;
    assert_eq!(ack, json!({"type": "joined", "room": room, "id": "j"}));
}

/// An application-level round trip: proves the connection is usable and that nothing else was
/// queued before the answer.
pub(crate) async fn ping(ws: &mut Ws, id: &str) {
    send(ws, json!({"type": "ping", "id": id, "data": [1, 2]})).await;
    assert_eq!(recv(ws).await, json!({"type": "pong", "id": id, "data": [1, 2]}));
}

pub(crate) fn token(sub: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    microframework::auth::JwtSigner::hs256(SECRET.as_bytes()).sign(&json!({"sub": sub, "exp": now + 300})).unwrap()
}

pub(crate) fn jwt_yaml() -> String {
    format!("auth:\n  jwt:\n    secret: {SECRET}\n")
}

/// Sum of the samples of `name` whose labels contain `label` (for example `reason="invalid"`).
pub(crate) fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

//! Subscriptions (and any operation) over WebSocket: `graphql-transport-ws`, and the legacy
//! `graphql-ws` protocol of subscriptions-transport-ws.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_graphql::http::{WebSocketProtocols, WsMessage};
use async_graphql::{Data, Executor};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt, future};
use microframework_auth::{AuthError, Claims, JwtConfig, JwtVerifier, bearer_token};
use serde_json::Value;
use tracing::Instrument;

use crate::error::codes;
use crate::http::request_error;
use crate::router::Shared;

/// The largest WebSocket message accepted when `graphql.max_body` is not set.
const DEFAULT_MAX_MESSAGE: usize = 2 * 1024 * 1024;

/// Where tokens presented in `connection_init` are verified.
pub(crate) enum VerifierSource {
    /// JWT authentication is not configured: tokens are ignored.
    Off,
    /// The service's shared verifier.
    Given(JwtVerifier),
    /// One built from `auth.jwt` on first use (the service has no shared verifier).
    FromConfig { config: Box<JwtConfig>, cell: tokio::sync::OnceCell<Option<JwtVerifier>> },
}

/// How WebSocket connections are authenticated.
pub(crate) struct WsAuth {
    pub(crate) source: VerifierSource,
    /// `auth.jwt.required`: a connection without claims is refused.
    pub(crate) required: bool,
    /// `auth.jwt.leeway_seconds`: a connection is closed this long after its token expires.
    pub(crate) leeway: Duration,
}

enum Check<'a> {
    Ignore,
    Verify(&'a JwtVerifier),
    Unavailable,
}

impl WsAuth {
    async fn check(&self) -> Check<'_> {
        match &self.source {
            VerifierSource::Off => Check::Ignore,
            VerifierSource::Given(v) => Check::Verify(v),
            VerifierSource::FromConfig { config, cell } => {
                let v = cell
                    .get_or_init(|| async {
                        match JwtVerifier::from_config(config).await {
                            Ok(v) => Some(v),
                            Err(e) => {
                                tracing::error!(error = %e, "GraphQL WebSocket authentication is unavailable");
                                None
                            }
                        }
                    })
                    .await;
                match v {
                    Some(v) => Check::Verify(v),
                    None => Check::Unavailable,
                }
            }
        }
    }

    /// The claims of a connection: from the token of the `connection_init` payload when there is
    /// one, else from the upgrade request. The error message is safe to send to the client.
    async fn authenticate(&self, payload: &Value, upgrade: Option<&Claims>) -> Result<Option<Claims>, String> {
        let token = token_from_payload(payload).map_err(|e| e.to_string())?;
        match token {
            Some(token) => match self.check().await {
                Check::Verify(v) => v.verify(&token).await.map(Some).map_err(|e| e.to_string()),
                Check::Ignore => {
                    tracing::debug!("token in connection_init ignored: JWT authentication is not configured");
                    Ok(upgrade.cloned())
                }
                Check::Unavailable => Err("the token cannot be verified right now".to_owned()),
            },
            None if self.required && upgrade.is_none() => Err(AuthError::MissingToken.to_string()),
            None => Ok(upgrade.cloned()),
        }
    }
}

/// A value of `map` under `key`, compared without case.
fn get_ci<'a>(map: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// The bearer token of a `connection_init` payload: `{"Authorization": "Bearer ..."}`,
/// `{"headers": {"Authorization": "Bearer ..."}}`, `{"token": "..."}` or `{"authToken": "..."}`.
pub(crate) fn token_from_payload(payload: &Value) -> Result<Option<String>, AuthError> {
    let Some(obj) = payload.as_object() else { return Ok(None) };
    let header = get_ci(obj, "authorization")
        .or_else(|| get_ci(obj, "headers").and_then(Value::as_object).and_then(|h| get_ci(h, "authorization")));
    if let Some(value) = header {
        let value =
            value.as_str().ok_or_else(|| AuthError::Malformed("the Authorization value is not a string".into()))?;
        return bearer_token(value).map(|t| Some(t.to_owned()));
    }
    if let Some(value) = get_ci(obj, "token").or_else(|| get_ci(obj, "authToken")) {
        let value = value.as_str().ok_or_else(|| AuthError::Malformed("the token is not a string".into()))?.trim();
        if value.is_empty() {
            return Err(AuthError::MissingToken);
        }
        let looks_bearer = value.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("bearer "));
        let token = if looks_bearer { bearer_token(value)? } else { value };
        if token.chars().any(char::is_whitespace) {
            return Err(AuthError::Malformed("the bearer token must not contain whitespace".to_owned()));
        }
        return Ok(Some(token.to_owned()));
    }
    Ok(None)
}

/// `GET {ws_path}`: upgrades to a GraphQL WebSocket connection.
pub(crate) async fn upgrade<E: Executor>(State(st): State<Arc<Shared<E>>>, req: Request) -> Response {
    let (mut parts, _body) = req.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u.protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS),
        Err(rejection) => return rejection.into_response(),
    };
    let protocol =
        upgrade.selected_protocol().and_then(|v| v.to_str().ok()).and_then(|p| WebSocketProtocols::from_str(p).ok());
    let Some(protocol) = protocol else {
        return request_error(
            StatusCode::BAD_REQUEST,
            codes::BAD_REQUEST,
            "Request the `graphql-transport-ws` (or legacy `graphql-ws`) WebSocket subprotocol.",
            "application/json",
        );
    };
    let Ok(slot) = st.ws_slots.clone().try_acquire_owned() else {
        tracing::debug!(
            max = st.cfg.max_ws_connections,
            "GraphQL WebSocket upgrade refused: graphql.max_ws_connections"
        );
        let mut res = request_error(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::SERVICE_UNAVAILABLE,
            "Too many GraphQL WebSocket connections; retry later.",
            "application/json",
        );
        res.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
        return res;
    };
    let claims = parts.extensions.get::<Claims>().cloned();
    let limit = st.cfg.max_body.map_or(DEFAULT_MAX_MESSAGE, |b| b.as_usize());
    let span = tracing::info_span!("graphql_ws", protocol = protocol.sec_websocket_protocol());
    upgrade.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| {
        async move {
            serve(st, socket, protocol, claims).await;
            drop(slot);
        }
        .instrument(span)
    })
}

/// The `type` and `id` of a protocol message.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
}

/// The operations running on one connection, for `graphql.max_subscriptions_per_connection`.
struct Operations {
    max: usize,
    protocol: WebSocketProtocols,
    active: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Error messages for refused operations, sent by the connection's loop.
    refusals: tokio::sync::mpsc::Sender<String>,
}

impl Operations {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a client message goes on to the executor: a new operation beyond the limit does
    /// not (its refusal is queued); `complete`/`stop` end one.
    fn admit(&self, bytes: &[u8]) -> bool {
        let Ok(Envelope { kind, id: Some(id) }) = serde_json::from_slice::<Envelope<'_>>(bytes) else {
            return true;
        };
        match kind.as_ref() {
            "subscribe" | "start" => {
                let mut active = self.lock();
                if active.contains(id.as_ref()) || active.len() < self.max {
                    active.insert(id.into_owned());
                    return true;
                }
                drop(active);
                let message = format!("Too many operations on this connection; at most {} may run at once.", self.max);
                let error =
                    serde_json::json!({"message": message, "extensions": {"code": codes::TOO_MANY_SUBSCRIPTIONS}});
                let payload = match self.protocol {
                    WebSocketProtocols::GraphQLWS => serde_json::json!([error]),
                    _ => error,
                };
                let refusal = serde_json::json!({"type": "error", "id": id, "payload": payload}).to_string();
                // Full only if the client floods refusals faster than it reads: drop those.
                let _ = self.refusals.try_send(refusal);
                false
            }
            "complete" | "stop" => {
                self.lock().remove(id.as_ref());
                true
            }
            _ => true,
        }
    }

    /// Notes the end of an operation the server reports (`complete`, `error`).
    fn on_server_message(&self, text: &str) {
        // Only those two end an operation; skip parsing the (large) `next`/`data` messages.
        if !(text.starts_with(r#"{"type":"complete""#) || text.starts_with(r#"{"type":"error""#)) {
            return;
        }
        if let Ok(Envelope { id: Some(id), .. }) = serde_json::from_str::<Envelope<'_>>(text) {
            self.lock().remove(id.as_ref());
        }
    }
}

fn is_connection_init(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_slice::<Kind>(bytes).is_ok_and(|k| k.kind == "connection_init")
}

/// Sleeps until `leeway` after the Unix time `exp`.
async fn until_expiry(exp: u64, leeway: Duration) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let left = Duration::from_secs(exp).saturating_add(leeway).saturating_sub(now);
    tokio::time::sleep(left).await;
}

/// The close code of `graphql-transport-ws` for async-graphql's generic ones: 4400 for an invalid
/// message, 4401 for a subscription before `connection_init`.
fn close_code(protocol: WebSocketProtocols, code: u16) -> u16 {
    match (protocol, code) {
        (WebSocketProtocols::GraphQLWS, 1002) => 4400,
        (WebSocketProtocols::GraphQLWS, 1011) => 4401,
        _ => code,
    }
}

/// A close frame; the reason is cut to the 123 bytes a frame can hold.
fn close(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame { code, reason: reason[..end].to_owned().into() }))
}

async fn serve<E: Executor>(
    st: Arc<Shared<E>>,
    socket: WebSocket,
    protocol: WebSocketProtocols,
    claims: Option<Claims>,
) {
    let (mut sink, stream) = socket.split();
    let (refusals, mut refused) = tokio::sync::mpsc::channel(64);
    let operations = Arc::new(Operations {
        max: st.cfg.max_subscriptions_per_connection,
        protocol,
        active: Default::default(),
        refusals,
    });
    let init_seen = Arc::new(AtomicBool::new(false));
    let auth_failed = Arc::new(AtomicBool::new(false));
    // The `exp` of the connection's claims (0: none): the connection ends when its token does.
    let expires = Arc::new(AtomicU64::new(claims.as_ref().and_then(|c| c.exp).unwrap_or(0)));

    let seen = init_seen.clone();
    let input = stream
        .take_while(|m| future::ready(m.is_ok()))
        .filter_map(|m| {
            future::ready(match m {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => Some(m.into_data()),
                _ => None,
            })
        })
        .inspect(move |bytes| {
            if !seen.load(Ordering::Relaxed) && is_connection_init(bytes) {
                seen.store(true, Ordering::Relaxed);
            }
        })
        .filter({
            let operations = operations.clone();
            move |bytes| future::ready(operations.admit(bytes))
        });

    let mut data = Data::default();
    if let Some(c) = claims.clone() {
        data.insert(c);
    }
    let auth = st.auth.clone();
    let failed = auth_failed.clone();
    let exp = expires.clone();
    let on_init = move |payload: Value| async move {
        match auth.authenticate(&payload, claims.as_ref()).await {
            Ok(Some(claims)) => {
                exp.store(claims.exp.unwrap_or(0), Ordering::Relaxed);
                let mut data = Data::default();
                data.insert(claims);
                Ok(data)
            }
            Ok(None) => Ok(Data::default()),
            Err(message) => {
                tracing::debug!(reason = %message, "GraphQL WebSocket connection refused");
                failed.store(true, Ordering::Relaxed);
                Err(async_graphql::Error::new(message))
            }
        }
    };
    let gql = async_graphql::http::WebSocket::new(st.executor.clone(), input, protocol)
        .connection_data(data)
        .on_connection_init(on_init);
    futures_util::pin_mut!(gql);

    let keepalive = st.cfg.subscription_keepalive;
    let mut ping =
        (!keepalive.is_zero()).then(|| tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive));
    let init_deadline = tokio::time::sleep(st.cfg.connection_init_timeout);
    tokio::pin!(init_deadline);
    let shutdown = st.shutdown.clone();
    let leeway = st.auth.leeway;

    let (code, reason) = loop {
        let exp = expires.load(Ordering::Relaxed);
        tokio::select! {
            msg = gql.next() => match msg {
                Some(WsMessage::Text(text)) => {
                    operations.on_server_message(&text);
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                // graphql-transport-ws: 4403 when connection_init failed authentication.
                Some(WsMessage::Close(_, _)) if auth_failed.load(Ordering::Relaxed) => break (4403, "Forbidden".to_owned()),
                Some(WsMessage::Close(code, reason)) => break (close_code(protocol, code), reason),
                None if auth_failed.load(Ordering::Relaxed) => break (4403, "Forbidden".to_owned()),
                None => break (1000, String::new()),
            },
            _ = async {
                match ping.as_mut() {
                    Some(interval) => interval.tick().await,
                    None => std::future::pending().await,
                }
            } => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            () = &mut init_deadline, if !init_seen.load(Ordering::Relaxed) => {
                break (4408, "Connection initialisation timeout".to_owned());
            }
            Some(refusal) = refused.recv() => {
                if sink.send(Message::Text(refusal.into())).await.is_err() {
                    return;
                }
            }
            () = shutdown.cancelled() => break (1001, "The server is shutting down.".to_owned()),
            () = until_expiry(exp, leeway), if exp > 0 => break (4403, "Forbidden: the token has expired".to_owned()),
        }
    };
    let _ = sink.send(close(code, &reason)).await;
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_from_connection_init_payloads() {
        let t = |v: Value| token_from_payload(&v);
        assert_eq!(t(json!({"Authorization": "Bearer abc"})).unwrap().as_deref(), Some("abc"));
        assert_eq!(t(json!({"authorization": "bearer abc"})).unwrap().as_deref(), Some("abc"));
        assert_eq!(t(json!({"headers": {"Authorization": "Bearer abc"}})).unwrap().as_deref(), Some("abc"));
        assert_eq!(t(json!({"token": "abc"})).unwrap().as_deref(), Some("abc"));
        assert_eq!(t(json!({"token": "Bearer abc"})).unwrap().as_deref(), Some("abc"));
        assert_eq!(t(json!({"authToken": "abc"})).unwrap().as_deref(), Some("abc"));
        assert_eq!(t(json!({})).unwrap(), None);
        assert_eq!(t(json!(null)).unwrap(), None);
        assert_eq!(t(json!([1, 2])).unwrap(), None);
        assert!(t(json!({"Authorization": "Basic xyz"})).is_err());
        assert!(t(json!({"Authorization": 5})).is_err());
        assert!(t(json!({"token": "a b"})).is_err());
        assert!(t(json!({"token": ""})).is_err());
    }

    #[test]
    fn detects_connection_init() {
        assert!(is_connection_init(br#"{"type":"connection_init","payload":{}}"#));
        assert!(!is_connection_init(br#"{"type":"subscribe"}"#));
        assert!(!is_connection_init(b"garbage"));
    }

    #[test]
    fn close_reasons_fit_a_frame() {
        let long = "é".repeat(100);
        match close(4400, &long) {
            Message::Close(Some(f)) => assert!(f.reason.len() <= 123),
            _ => unreachable!(),
        }
    }
}

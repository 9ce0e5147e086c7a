//! One connection's life: a reader (this task) and a writer task draining the send queue.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use microframework_auth::Claims;

use crate::connection::{CloseReason, Connection, DisconnectReason};
use crate::endpoint::Endpoint;
use crate::envelope::{Envelope, OutMessage, error_envelope};
use crate::error::{WsError, codes};
use crate::hub::{CloseRequest, Peer, SlotGuard};
use crate::metrics::{DropReason, WsMetrics};

/// Invalid messages in a row (not JSON, not an envelope, binary) after which the connection is
/// closed with `1008`.
pub const MAX_CONSECUTIVE_INVALID: u32 = 10;

/// Messages written before one flush.
const MAX_BATCH: usize = 64;
/// Longest wait for the close handshake of a peer that is not reading (dead or slow).
const UNRESPONSIVE_GRACE: Duration = Duration::from_millis(500);

const CLOSE_POLICY: u16 = 1008;
const CLOSE_ERROR: u16 = 1011;

/// How the read loop ended.
enum Ended {
    /// The client sent a close frame, or its TCP connection ended.
    Peer { code: Option<u16>, text: String, handshake: bool },
    /// A close was requested (see [`Peer::close_request`]).
    Requested,
    /// Reading failed; the reason has been recorded as a close request.
    Failed,
}

pub(crate) async fn run(
    socket: WebSocket,
    ep: Arc<Endpoint>,
    slot: SlotGuard,
    claims: Option<Claims>,
    remote: Option<SocketAddr>,
) {
    let (peer, rx, registration) = ep.hub.register(claims, remote);
    let metrics = ep.hub.settings().metrics.clone();
    let conn = Connection { peer: peer.clone(), hub: ep.hub.clone() };
    tracing::debug!(connection = %peer.id, ?remote, "WebSocket connected");
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(
        sink,
        rx,
        peer.clone(),
        ep.cfg.heartbeat_interval,
        ep.cfg.close_timeout,
        metrics.clone(),
    ));
    let pace = Pace::new(ep.cfg.max_messages_per_second, ep.cfg.message_burst);
    let mut reader = Reader { stream, conn: conn.clone(), ep: ep.clone(), metrics: metrics.clone(), invalid: 0, pace };

    let ended = match guarded(ep.handler.on_connect(&conn)).await {
        Ok(Ok(())) => reader.read_loop().await,
        Ok(Err(e)) => {
            let _ = conn.send(error_envelope(e.code(), e.message(), None));
            peer.request_close(e.close_code().unwrap_or(CLOSE_POLICY), e.message(), DisconnectReason::Server);
            Ended::Requested
        }
        Err(()) => {
            tracing::error!(connection = %peer.id, "the WebSocket handler panicked in on_connect");
            peer.request_close(CLOSE_ERROR, "internal error", DisconnectReason::Error);
            Ended::Requested
        }
    };

    // Closing: let the writer send the close frame, and read until the peer answers it.
    let reason = match &ended {
        Ended::Peer { code, text, .. } if peer.request_close(code.unwrap_or(1005), text, DisconnectReason::Client) => {
            CloseReason { kind: DisconnectReason::Client, code: *code, text: text.clone() }
        }
        _ => match peer.close_request() {
            Some(r) => CloseReason { kind: r.cause, code: Some(r.code), text: r.reason },
            None => CloseReason { kind: DisconnectReason::Error, code: None, text: String::new() },
        },
    };
    let deadline = Instant::now() + grace(reason.kind, ep.cfg.close_timeout);
    let drain = match &ended {
        Ended::Requested => true,
        Ended::Peer { handshake, .. } => *handshake,
        Ended::Failed => false,
    };
    if drain {
        // Until the peer's close frame (or EOF); this also flushes tungstenite's automatic reply
        // to a client's close frame.
        let _ = tokio::time::timeout_at(deadline, async {
            while let Some(Ok(msg)) = reader.stream.next().await {
                if matches!(msg, Message::Close(_)) {
                    while let Some(Ok(_)) = reader.stream.next().await {}
                    break;
                }
            }
        })
        .await;
    }
    let mut writer = writer;
    if tokio::time::timeout_at(deadline, &mut writer).await.is_err() {
        writer.abort();
    }
    drop(reader);

    drop(registration);
    metrics.disconnect(reason.kind);
    tracing::debug!(connection = %peer.id, reason = %reason.kind, code = ?reason.code, "WebSocket disconnected");
    if guarded(ep.handler.on_close(&conn, reason)).await.is_err() {
        tracing::error!(connection = %peer.id, "the WebSocket handler panicked in on_close");
    }
    drop(slot);
}

/// How long closing may take for a connection ended for `kind`.
fn grace(kind: DisconnectReason, close_timeout: Duration) -> Duration {
    match kind {
        DisconnectReason::DeadPeer | DisconnectReason::SlowConsumer => close_timeout.min(UNRESPONSIVE_GRACE),
        _ => close_timeout,
    }
}

/// `code` if a close frame may carry it (RFC 6455 §7.4), else `1008`.
fn sendable(code: u16) -> u16 {
    match code {
        1000..=1003 | 1007..=1014 | 3000..=4999 => code,
        _ => CLOSE_POLICY,
    }
}

/// Runs a handler future, turning a panic into `Err(())`.
async fn guarded<F: Future>(fut: F) -> Result<F::Output, ()> {
    AssertUnwindSafe(fut).catch_unwind().await.map_err(|_| ())
}

struct Reader {
    stream: SplitStream<WebSocket>,
    conn: Connection,
    ep: Arc<Endpoint>,
    metrics: WsMetrics,
    /// Invalid messages in a row.
    invalid: u32,
    /// The inbound message rate.
    pace: Pace,
}

/// A token bucket for one connection's inbound messages (`max_messages_per_second`,
/// `message_burst`).
struct Pace {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Pace {
    fn new(per_second: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self { per_second: f64::from(per_second.max(1)), burst, tokens: burst, at: Instant::now() }
    }

    /// Takes a token; when there is none, how long until there is.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return None;
        }
        Some(Duration::from_secs_f64((1.0 - self.tokens) / self.per_second))
    }
}

impl Reader {
    fn peer(&self) -> &Peer {
        &self.conn.peer
    }

    async fn read_loop(&mut self) -> Ended {
        let timeout = self.ep.cfg.heartbeat_timeout;
        let closing = self.peer().closing.clone();
        let mut deadline = Instant::now() + timeout;
        loop {
            let frame = tokio::select! {
                biased;
                _ = closing.cancelled() => return Ended::Requested,
                frame = self.stream.next() => frame,
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::debug!(connection = %self.peer().id, ?timeout, "no frame from the client: dead peer");
                    self.peer().request_close(CLOSE_ERROR, "heartbeat timeout", DisconnectReason::DeadPeer);
                    return Ended::Requested;
                }
            };
            if let Some(Ok(Message::Text(_) | Message::Binary(_))) = &frame
                && let Some(wait) = self.pace.take(Instant::now())
            {
                // Over the message rate: hold this message, and the client's next ones, back.
                tracing::trace!(connection = %self.peer().id, ?wait, "inbound message rate reached; pacing reads");
                tokio::select! {
                    biased;
                    _ = closing.cancelled() => return Ended::Requested,
                    _ = tokio::time::sleep(wait) => {}
                }
                self.pace.take(Instant::now());
            }
            deadline = Instant::now() + timeout;
            match frame {
                None => return Ended::Peer { code: None, text: String::new(), handshake: false },
                Some(Err(e)) => return self.read_failed(&e),
                Some(Ok(Message::Text(text))) => {
                    self.metrics.messages_in.increment(1);
                    self.on_text(&text).await;
                }
                Some(Ok(Message::Binary(_))) => {
                    self.metrics.messages_in.increment(1);
                    self.invalid(codes::UNSUPPORTED_FRAME, "Binary frames are not supported; send JSON text.", None);
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    let (code, text) = match frame {
                        Some(f) => (Some(f.code), f.reason.as_str().to_owned()),
                        None => (None, String::new()),
                    };
                    return Ended::Peer { code, text, handshake: true };
                }
            }
        }
    }

    /// Classifies a read error (tungstenite's error type is not reachable through axum, so by
    /// its message) and records the close to send.
    fn read_failed(&self, e: &axum::Error) -> Ended {
        let text = e.to_string();
        let id = self.peer().id;
        if text.contains("without closing handshake") || text.contains("IO error") {
            tracing::debug!(connection = %id, "the client went away: {text}");
            return Ended::Peer { code: None, text: String::new(), handshake: false };
        }
        let (code, reason, cause) = if text.contains("Space limit exceeded") || text.contains("Message too long") {
            (1009, "message too big", DisconnectReason::Policy)
        } else if text.contains("UTF-8") {
            (1007, "invalid UTF-8", DisconnectReason::Policy)
        } else if text.contains("protocol error") {
            (1002, "protocol error", DisconnectReason::Policy)
        } else {
            (CLOSE_ERROR, "error", DisconnectReason::Error)
        };
        tracing::debug!(connection = %id, code, "closing the WebSocket: {text}");
        if cause == DisconnectReason::Policy {
            self.metrics.dropped(DropReason::Invalid);
        }
        self.peer().request_close(code, reason, cause);
        Ended::Failed
    }

    async fn on_text(&mut self, text: &Utf8Bytes) {
        match Envelope::parse(text.as_str()) {
            Err(invalid) => self.invalid(codes::INVALID_MESSAGE, &invalid.message, invalid.id.as_deref()),
            Ok(env) => {
                self.invalid = 0;
                self.dispatch(env).await;
            }
        }
    }

    fn invalid(&mut self, code: &str, message: &str, id: Option<&str>) {
        self.metrics.dropped(DropReason::Invalid);
        let _ = self.conn.send(error_envelope(code, message, id));
        self.invalid += 1;
        if self.invalid >= MAX_CONSECUTIVE_INVALID {
            self.peer().request_close(CLOSE_POLICY, "too many invalid messages", DisconnectReason::Policy);
        }
    }

    fn reply_error(&self, e: &WsError, id: Option<&str>) {
        if e.code() == codes::INTERNAL {
            match e.cause() {
                Some(cause) => tracing::error!(connection = %self.peer().id, error.cause = %cause, "{}", e.message()),
                None => tracing::error!(connection = %self.peer().id, "{}", e.message()),
            }
        }
        let _ = self.conn.send(error_envelope(e.code(), e.message(), id));
        if let Some(code) = e.close_code() {
            self.peer().request_close(code, e.message(), DisconnectReason::Server);
        }
    }

    async fn dispatch(&mut self, env: Envelope) {
        match env.kind.as_str() {
            "join" => self.join(env).await,
            "leave" => match &env.room {
                Some(room) => {
                    self.conn.leave(room);
                    let _ = self.conn.send(env.reply("left"));
                }
                None => self.invalid(codes::INVALID_MESSAGE, "`leave` needs a `room`", env.id.as_deref()),
            },
            "ping" => {
                let _ = self.conn.send(OutMessage::from(env.reply("pong").with_data(env.data.clone())));
            }
            _ => {
                let id = env.id.clone();
                match guarded(self.ep.handler.on_message(&self.conn, env)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => self.reply_error(&e, id.as_deref()),
                    Err(()) => {
                        tracing::error!(connection = %self.peer().id, "the WebSocket handler panicked in on_message");
                        let _ = self.conn.send(error_envelope(
                            codes::INTERNAL,
                            "An unexpected error occurred.",
                            id.as_deref(),
                        ));
                        self.peer().request_close(CLOSE_ERROR, "internal error", DisconnectReason::Error);
                    }
                }
            }
        }
    }

    async fn join(&mut self, env: Envelope) {
        let Some(room) = env.room.as_deref() else {
            return self.invalid(codes::INVALID_MESSAGE, "`join` needs a `room`", env.id.as_deref());
        };
        let peer = self.peer();
        let member = self.ep.hub.members(room).contains(&peer.id);
        if !member && peer.room_count() >= self.ep.cfg.max_rooms_per_connection {
            let e = WsError::new(
                codes::FORBIDDEN,
                format!("A connection may join at most {} rooms.", self.ep.cfg.max_rooms_per_connection),
            );
            return self.reply_error(&e, env.id.as_deref());
        }
        match guarded(self.ep.handler.authorize_join(&self.conn, room)).await {
            Ok(true) => {
                self.conn.join(room);
                let _ = self.conn.send(env.reply("joined"));
            }
            Ok(false) => {
                let e = WsError::new(codes::FORBIDDEN, "You may not join this room.");
                self.reply_error(&e, env.id.as_deref());
            }
            Err(()) => {
                // As for a panic in on_message: reason `error`, close code 1011.
                tracing::error!(connection = %self.peer().id, "the WebSocket handler panicked in authorize_join");
                let _ =
                    self.conn.send(error_envelope(codes::INTERNAL, "An unexpected error occurred.", env.id.as_deref()));
                self.peer().request_close(CLOSE_ERROR, "internal error", DisconnectReason::Error);
            }
        }
    }
}

/// Drains the send queue into the socket and pings every `interval`; on a close request, sends
/// the close frame (after the queued messages, unless the client is too slow for them).
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Message>,
    peer: Arc<Peer>,
    interval: Duration,
    close_timeout: Duration,
    metrics: WsMetrics,
) {
    let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let next = tokio::select! {
            biased;
            _ = peer.closing.cancelled() => break,
            msg = rx.recv() => match msg {
                Some(m) => Some(m),
                None => break,
            },
            _ = ping.tick() => None,
        };
        let write = async {
            match next {
                None => sink.send(Message::Ping(Bytes::new())).await.map(|()| 0),
                Some(first) => {
                    sink.feed(first).await?;
                    let mut n = 1;
                    while n < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(m) => {
                                sink.feed(m).await?;
                                n += 1;
                            }
                            Err(_) => break,
                        }
                    }
                    sink.flush().await.map(|()| n)
                }
            }
        };
        tokio::select! {
            biased;
            _ = peer.closing.cancelled() => break,
            written = write => match written {
                Ok(n) => metrics.messages_out.increment(n as u64),
                Err(e) => {
                    tracing::debug!(connection = %peer.id, "WebSocket write failed: {e}");
                    peer.request_close(CLOSE_ERROR, "write failed", DisconnectReason::Error);
                    return;
                }
            },
        }
    }

    let Some(CloseRequest { code, reason, cause }) = peer.close_request() else { return };
    if cause == DisconnectReason::Client {
        // The client started the close; tungstenite answers it.
        return;
    }
    // Messages queued before an orderly close are delivered first; a slow or dead client gets the
    // close frame right away.
    let deliver_queued = !matches!(cause, DisconnectReason::SlowConsumer | DisconnectReason::DeadPeer);
    let close = async {
        let mut n = 0u64;
        if deliver_queued {
            while let Ok(m) = rx.try_recv() {
                sink.feed(m).await?;
                n += 1;
            }
        }
        metrics.messages_out.increment(n);
        let frame = CloseFrame { code: sendable(code), reason: Utf8Bytes::from(reason) };
        sink.send(Message::Close(Some(frame))).await
    };
    if let Ok(Err(e)) = tokio::time::timeout(grace(cause, close_timeout), close).await {
        tracing::debug!(connection = %peer.id, "WebSocket close frame not sent: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut pace = Pace::new(10, 3);
        for _ in 0..3 {
            assert_eq!(pace.take(start), None);
        }
        let wait = pace.take(start).expect("the burst is spent");
        assert!((Duration::from_millis(99)..=Duration::from_millis(101)).contains(&wait), "{wait:?}");
        // A tenth of a second later there is one token again.
        assert_eq!(pace.take(start + Duration::from_millis(100)), None);
        assert!(pace.take(start + Duration::from_millis(100)).is_some());
        // Idle time refills up to the burst, no further.
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(pace.take(later), None);
        }
        assert!(pace.take(later).is_some());
    }

    #[test]
    fn only_sendable_close_codes_are_sent() {
        for ok in [1000, 1001, 1008, 1009, 1011, 3000, 4001, 4999] {
            assert_eq!(sendable(ok), ok);
        }
        for reserved in [0, 999, 1004, 1005, 1006, 1015, 2000, 5000] {
            assert_eq!(sendable(reserved), 1008);
        }
        assert_eq!(grace(DisconnectReason::DeadPeer, Duration::from_secs(2)), UNRESPONSIVE_GRACE);
        assert_eq!(grace(DisconnectReason::Shutdown, Duration::from_secs(2)), Duration::from_secs(2));
        assert_eq!(grace(DisconnectReason::SlowConsumer, Duration::from_millis(100)), Duration::from_millis(100));
    }
}

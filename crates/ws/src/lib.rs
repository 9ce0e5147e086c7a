//! WebSocket for MicroFramework services: a connection registry with rooms, JSON envelopes,
//! heartbeats, per-connection backpressure, authentication at the upgrade and a graceful close
//! at shutdown.
//!
//! # Example
//!
//! ```no_run
//! use microframework::Service;
//! use microframework_ws::{async_trait, Connection, Envelope, Hub, WsError, WsHandler};
//!
//! struct Chat;
//!
//! #[async_trait]
//! impl WsHandler for Chat {
//!     async fn on_message(&self, conn: &Connection, msg: Envelope) -> Result<(), WsError> {
//!         match msg.kind.as_str() {
//!             // {"type":"say","room":"lobby","data":{"text":"hi"}}
//!             "say" => {
//!                 let room = msg.require_room()?;
//!                 let said = Envelope::new("said").with_room(room).with_data(msg.data.clone());
//!                 conn.hub().broadcast(room, said);
//!                 Ok(())
//!             }
//!             other => Err(WsError::unknown_type(other)),
//!         }
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     let hub = Hub::new();
//!     Service::new("chat")
//!         .component(hub.component())
//!         .router({
//!             let hub = hub.clone();
//!             move |ctx| microframework_ws::router(hub, Chat, ctx, None)
//!         })
//!         .run()
//!         .await
//! }
//! ```
//!
//! # Protocol
//!
//! Clients exchange JSON text frames shaped as [`Envelope`]s:
//! `{"type": "...", "room": "...", "id": "...", "data": ...}`.
//!
//! | client sends | server answers |
//! |---|---|
//! | `{"type":"join","room":"r","id":"1"}` | `{"type":"joined","room":"r","id":"1"}`, or an error `permission_denied` when [`WsHandler::authorize_join`] refuses or the connection is in `max_rooms_per_connection` rooms already |
//! | `{"type":"leave","room":"r"}` | `{"type":"left","room":"r"}` |
//! | `{"type":"ping","id":"2","data":x}` | `{"type":"pong","id":"2","data":x}` (application-level; WebSocket pings are separate) |
//! | any other type | whatever [`WsHandler::on_message`] sends; its error becomes an error envelope |
//!
//! Error envelopes: `{"type":"error","code":"<code>","message":"<text>","id":"<id of the
//! offending message, when readable>"}`. The framework's codes are in [`codes`]:
//! `invalid_message` (not JSON, not an object, missing `type`, lengths out of range),
//! `unsupported_frame` (binary frames), `permission_denied`, `internal`. The connection stays
//! open after an invalid message; after [`MAX_CONSECUTIVE_INVALID`] (10) invalid messages in a
//! row it is closed with `1008`.
//!
//! # Close codes
//!
//! | code | when | `ws_disconnects_total{reason}` |
//! |---|---|---|
//! | `1001` | the service shuts down | `shutdown` |
//! | `1008` | slow consumer (queue full, policy `disconnect`); 10 invalid messages in a row; `on_connect` rejected | `slow_consumer`, `policy`, `server` |
//! | `1009` | a message larger than `max_message_size` (the connection is closed: a frame that size is refused before it is read) | `policy` |
//! | `1007` / `1002` | invalid UTF-8 / protocol violation | `policy` |
//! | `1011` | dead peer: no frame (not even a pong) for `heartbeat_timeout`; a handler panic | `dead_peer`, `error` |
//!
//! A dead or slow peer gets its close frame without waiting for its queue, and is dropped after
//! at most 500 ms (or `close_timeout`, if shorter) whether or not it answers.
//!
//! # Backpressure
//!
//! Each connection has a bounded queue of `send_queue` messages drained by its own writer task;
//! [`Hub::broadcast`] and [`Connection::send`] never wait. When a queue is full, the
//! `slow_consumer` policy applies to that client only: `disconnect` (default) or `drop_newest`.
//! Broadcast messages are serialised once and shared ([`OutMessage`]).
//!
//! # Shutdown
//!
//! An upgraded connection is not tracked by the HTTP server's graceful shutdown. When the
//! service's shutdown is requested, [`router`]'s watcher sends `1001` (Going Away) to every
//! client, refuses new upgrades with `503`, and waits up to `close_timeout` for the close
//! handshakes; add [`Hub::component`] to the service so that it does not exit before that.
//! Open WebSocket connections do not affect readiness or liveness.
//!
//! # Metrics
//!
//! See [`metrics::names`]: `ws_connections`, `ws_connections_total`, `ws_messages_in_total`,
//! `ws_messages_out_total`, `ws_messages_dropped_total{reason}`, `ws_disconnects_total{reason}`.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod component;
pub mod config;
mod connection;
mod endpoint;
mod envelope;
mod error;
mod handler;
mod hub;
pub mod metrics;
mod plugin;
mod session;

pub use component::WsComponent;
pub use config::{SlowConsumerPolicy, WsConfig};
pub use connection::{CloseReason, Connection, DisconnectReason};
pub use endpoint::{ACCESS_TOKEN_PARAM, router};
pub use envelope::{Envelope, InvalidEnvelope, MAX_ID_LEN, MAX_ROOM_LEN, MAX_TYPE_LEN, OutMessage};
pub use error::{SendError, WsError, codes};
pub use handler::WsHandler;
pub use hub::{BroadcastReport, CLOSE_GOING_AWAY, CLOSE_SLOW_CONSUMER, ConnectionId, Hub};
pub use plugin::WebSocketPlugin;
pub use session::MAX_CONSECUTIVE_INVALID;

/// Re-exported so that handlers can implement [`WsHandler`] without adding the dependency.
pub use async_trait::async_trait;

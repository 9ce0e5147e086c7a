//! One client connection, as handlers see it.

use std::net::SocketAddr;
use std::sync::Arc;

use microframework_auth::Claims;

use crate::envelope::OutMessage;
use crate::error::SendError;
use crate::hub::{ConnectionId, Hub, Peer};

/// Why a connection ended; the `reason` label of `ws_disconnects_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client closed the connection (close frame, or the TCP connection ended).
    Client,
    /// The client's send queue overflowed under the `disconnect` policy (close code `1008`).
    SlowConsumer,
    /// Nothing arrived from the client within `heartbeat_timeout` (close code `1011`).
    DeadPeer,
    /// The service is shutting down (close code `1001`).
    Shutdown,
    /// The application closed it: [`Connection::close`], [`Hub::close`], an `on_connect`
    /// rejection or a [`WsError::close`](crate::WsError::close).
    Server,
    /// The client broke the protocol rules: a message over `max_message_size` (close code
    /// `1009`) or too many invalid messages in a row (close code `1008`).
    Policy,
    /// A transport or protocol error, or a handler panic (close code `1011` when possible).
    Error,
}

impl DisconnectReason {
    /// Every reason, in label order.
    pub const ALL: [DisconnectReason; 7] =
        [Self::Client, Self::SlowConsumer, Self::DeadPeer, Self::Shutdown, Self::Server, Self::Policy, Self::Error];

    /// The metric label (`client`, `slow_consumer`, `dead_peer`, `shutdown`, `server`, `policy`,
    /// `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::SlowConsumer => "slow_consumer",
            Self::DeadPeer => "dead_peer",
            Self::Shutdown => "shutdown",
            Self::Server => "server",
            Self::Policy => "policy",
            Self::Error => "error",
        }
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a connection ended, as given to [`WsHandler::on_close`](crate::WsHandler::on_close).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// Why.
    pub kind: DisconnectReason,
    /// The close code: the client's for [`DisconnectReason::Client`] (`None` when it sent none
    /// or just dropped the TCP connection), otherwise the one the server sent.
    pub code: Option<u16>,
    /// The close reason text.
    pub text: String,
}

/// A client connection: its id, its verified claims, and the means to send to it and to manage
/// its rooms. Cheap to clone; a clone kept after the connection closed just fails to send.
#[derive(Clone)]
pub struct Connection {
    pub(crate) peer: Arc<Peer>,
    pub(crate) hub: Hub,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.peer.id)
            .field("subject", &self.peer.claims.as_ref().and_then(|c| c.subject()))
            .field("remote", &self.peer.remote)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The connection id, unique within the hub.
    pub fn id(&self) -> ConnectionId {
        self.peer.id
    }

    /// The claims of the token verified at the upgrade, if the client presented one.
    pub fn claims(&self) -> Option<&Claims> {
        self.peer.claims.as_ref()
    }

    /// The client's address, when the server recorded it.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.peer.remote
    }

    /// Queues a message for this client without waiting; the slow-consumer policy applies when
    /// its queue is full.
    ///
    /// # Errors
    ///
    /// [`SendError`] when the connection is closing or its queue is full.
    pub fn send(&self, msg: impl Into<OutMessage>) -> Result<(), SendError> {
        self.peer.offer(msg.into(), &self.hub.settings())
    }

    /// Adds this connection to `room` (no limit applies; see [`Hub::join`]).
    pub fn join(&self, room: &str) -> bool {
        self.hub.join(self.peer.id, room)
    }

    /// Removes this connection from `room`; `false` if it was not a member.
    pub fn leave(&self, room: &str) -> bool {
        self.hub.leave(self.peer.id, room)
    }

    /// The rooms this connection belongs to, sorted.
    pub fn rooms(&self) -> Vec<String> {
        self.peer.rooms()
    }

    /// The hub, to broadcast or reach other connections.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Closes the connection with `code` and `reason` (at most 123 bytes are sent) after the
    /// messages already queued; counted as [`DisconnectReason::Server`]. A code that a close
    /// frame may not carry (such as `1005` or `1006`) is sent as `1008`.
    pub fn close(&self, code: u16, reason: &str) {
        self.peer.request_close(code, reason, DisconnectReason::Server);
    }

    /// Whether the connection is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.peer.closing.is_cancelled()
    }
}

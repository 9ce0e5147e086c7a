//! The application's side of a WebSocket endpoint.

use async_trait::async_trait;

use crate::connection::{CloseReason, Connection};
use crate::envelope::Envelope;
use crate::error::WsError;

/// What a service does with its WebSocket clients.
///
/// Calls for one connection are sequential: the next message is read only after `on_message`
/// returns, so a slow handler slows that client down (its own backpressure), never the others.
/// Keep handlers short; spawn long work and reply with [`Connection::send`].
///
/// A handler that panics does not take the service down: the connection is closed with `1011`
/// and counted as [`DisconnectReason::Error`](crate::DisconnectReason::Error).
///
/// ```
/// use microframework_ws::{async_trait, Connection, Envelope, WsError, WsHandler};
///
/// struct Chat;
///
/// #[async_trait]
/// impl WsHandler for Chat {
///     async fn on_message(&self, conn: &Connection, msg: Envelope) -> Result<(), WsError> {
///         match msg.kind.as_str() {
///             "say" => {
///                 let room = msg.require_room()?;
///                 if !conn.rooms().iter().any(|r| r == room) {
///                     return Err(WsError::forbidden("join the room first"));
///                 }
///                 let out = Envelope::new("said").with_room(room).with_data(msg.data.clone());
///                 conn.hub().broadcast(room, out);
///                 Ok(())
///             }
///             other => Err(WsError::unknown_type(other)),
///         }
///     }
///
///     async fn authorize_join(&self, conn: &Connection, room: &str) -> bool {
///         !room.starts_with("admin:") || conn.claims().is_some_and(|c| c.has_role("admin"))
///     }
/// }
/// ```
#[async_trait]
pub trait WsHandler: Send + Sync + 'static {
    /// A client connected (after the upgrade). Return an error to reject it: the client gets
    /// the error envelope, then a close frame `1008` with the message as reason.
    async fn on_connect(&self, conn: &Connection) -> Result<(), WsError> {
        let _ = conn;
        Ok(())
    }

    /// A valid envelope of a type other than `join`, `leave` and `ping` arrived. An error is
    /// sent back as an error envelope carrying the message's `id`; the connection stays open
    /// unless the error has a [close code](WsError::close).
    async fn on_message(&self, conn: &Connection, msg: Envelope) -> Result<(), WsError>;

    /// The connection ended (it is already out of the hub and its rooms).
    async fn on_close(&self, conn: &Connection, reason: CloseReason) {
        let _ = (conn, reason);
    }

    /// Whether the client may join `room` with a `join` message (default: any room). Server
    /// code calling [`Hub::join`](crate::Hub::join) is not checked.
    async fn authorize_join(&self, conn: &Connection, room: &str) -> bool {
        let _ = (conn, room);
        true
    }
}

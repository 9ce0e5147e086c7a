//! Errors of handlers and of sending.

use std::borrow::Cow;
use std::fmt;

use microframework_core::{Error, ErrorKind};

/// Error codes the framework itself sends in error envelopes. Part of the public contract.
pub mod codes {
    /// The text frame is not JSON, or not a valid envelope.
    pub const INVALID_MESSAGE: &str = "invalid_message";
    /// A binary frame (only JSON text frames are accepted).
    pub const UNSUPPORTED_FRAME: &str = "unsupported_frame";
    /// `join` refused by [`WsHandler::authorize_join`](crate::WsHandler::authorize_join), or the
    /// room limit of the connection is reached.
    pub const FORBIDDEN: &str = "permission_denied";
    /// The handler failed unexpectedly (it returned an internal error or panicked).
    pub const INTERNAL: &str = "internal";
}

/// An error returned by a [`WsHandler`](crate::WsHandler): sent to the client as an error
/// envelope `{"type":"error","code":"<code>","message":"<message>","id":"<request id>"}`.
///
/// The code is stable and machine-readable (`snake_case`); the message is shown to the client,
/// so never put secrets or internal details in it (use [`WsError::internal`], whose cause is only
/// logged). With [`WsError::close`] the connection is also closed.
///
/// ```
/// use microframework_ws::WsError;
/// let e = WsError::new("room_full", "The room is full.");
/// assert_eq!(e.code(), "room_full");
/// let e = WsError::bad_request("`text` is required").close(1008);
/// assert_eq!(e.close_code(), Some(1008));
/// ```
#[derive(Debug)]
pub struct WsError {
    code: Cow<'static, str>,
    message: Cow<'static, str>,
    close: Option<u16>,
    source: Option<microframework_core::BoxError>,
}

impl WsError {
    /// An error with a stable `code` and a client-facing `message`.
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self { code: code.into(), message: message.into(), close: None, source: None }
    }

    /// From a protocol-neutral [`ErrorKind`]: the code is [`ErrorKind::code`].
    pub fn from_kind(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(kind.code(), message)
    }

    /// `bad_request`: the message is malformed for this handler.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::from_kind(ErrorKind::BadRequest, message)
    }

    /// `permission_denied`.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::from_kind(ErrorKind::PermissionDenied, message)
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::from_kind(ErrorKind::NotFound, message)
    }

    /// `unknown_type`: the handler does not handle this message type.
    pub fn unknown_type(kind: &str) -> Self {
        let shown: String = kind.chars().take(64).collect();
        Self::new("unknown_type", format!("Messages of type `{shown}` are not handled."))
    }

    /// `internal`: the client sees a generic message; `source` is logged.
    pub fn internal(source: impl Into<microframework_core::BoxError>) -> Self {
        Self { source: Some(source.into()), ..Self::new(codes::INTERNAL, "An unexpected error occurred.") }
    }

    /// Also close the connection with `code` (for example `1008`, policy violation) after
    /// sending the error envelope.
    pub fn close(mut self, code: u16) -> Self {
        self.close = Some(code);
        self
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The client-facing message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The close code, when the connection is to be closed.
    pub fn close_code(&self) -> Option<u16> {
        self.close
    }

    /// The internal cause, if any (logged, never sent).
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for WsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<Error> for WsError {
    /// Keeps the kind's code and the client-facing message; an internal error's cause is kept
    /// for logging only.
    fn from(e: Error) -> Self {
        let kind = e.kind();
        let message = e.message().to_owned();
        let mut out = Self::from_kind(kind, message);
        if kind == ErrorKind::Internal {
            out.source = Some(Box::new(e));
        }
        out
    }
}

impl From<serde_json::Error> for WsError {
    /// A `data` payload that does not deserialise: `bad_request` naming the problem.
    fn from(e: serde_json::Error) -> Self {
        Self::bad_request(format!("`data` is invalid: {e}"))
    }
}

/// Why a message could not be queued for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No open connection has this id.
    #[error("no open connection has this id")]
    UnknownConnection,
    /// The connection is closing; nothing more is sent.
    #[error("the connection is closing")]
    Closed,
    /// The send queue was full and the policy is `drop_newest`: this message was dropped.
    #[error("the send queue is full; the message was dropped")]
    QueueFull,
    /// The send queue was full and the policy is `disconnect`: the connection is being closed.
    #[error("the send queue is full; the slow client is being disconnected")]
    SlowConsumer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_keep_codes_and_hide_internal_causes() {
        let e: WsError = Error::not_found("no such room").into();
        assert_eq!((e.code(), e.message()), ("not_found", "no such room"));
        let e: WsError = Error::internal(std::io::Error::other("disk on fire")).into();
        assert_eq!(e.code(), "internal");
        assert!(!e.message().contains("disk"));
        assert!(e.to_string().contains("disk on fire"));
        let e = WsError::internal(std::io::Error::other("boom"));
        assert!(e.cause().is_some());
        assert_eq!(WsError::unknown_type("x").code(), "unknown_type");
    }
}

//! JSON message envelopes and outgoing messages.

use axum::extract::ws::{Message, Utf8Bytes};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::WsError;

/// Longest `type`, in characters.
pub const MAX_TYPE_LEN: usize = 64;
/// Longest `room`, in characters.
pub const MAX_ROOM_LEN: usize = 128;
/// Longest `id`, in characters.
pub const MAX_ID_LEN: usize = 128;

/// A JSON message: `{"type": "...", "room": "...", "id": "...", "data": <any JSON>}`.
///
/// - `type` is required, 1 to 64 characters without control characters. The types `join`,
///   `leave` and `ping` are handled by the framework (see the [crate docs](crate)); every other
///   type goes to [`WsHandler::on_message`](crate::WsHandler::on_message).
/// - `room` is optional, 1 to 128 characters without control characters.
/// - `id` is an optional client correlation id (a string of at most 128 characters), echoed in
///   replies and error envelopes.
/// - `data` is any JSON value (absent is `null`).
///
/// Unknown top-level members are ignored.
///
/// ```
/// use microframework_ws::Envelope;
/// let env = Envelope::parse(r#"{"type":"say","room":"lobby","id":"7","data":{"text":"hi"}}"#).unwrap();
/// assert_eq!((env.kind.as_str(), env.room.as_deref(), env.id.as_deref()), ("say", Some("lobby"), Some("7")));
/// let reply = env.reply("said").with_data(serde_json::json!({"ok": true}));
/// assert_eq!(reply.to_json(), r#"{"type":"said","room":"lobby","id":"7","data":{"ok":true}}"#);
/// assert!(Envelope::parse(r#"{"room":"lobby"}"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The message type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The room the message is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The client's correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The payload.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

/// Why a text frame is not a valid envelope, with the client's `id` when it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEnvelope {
    /// What is wrong (safe to show to the client).
    pub message: String,
    /// The `id` of the message, if it was readable.
    pub id: Option<String>,
}

impl std::fmt::Display for InvalidEnvelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InvalidEnvelope {}

impl Envelope {
    /// An envelope of type `kind` without room, id or data.
    pub fn new(kind: impl Into<String>) -> Self {
        Self { kind: kind.into(), room: None, id: None, data: Value::Null }
    }

    /// Sets the room.
    pub fn with_room(mut self, room: impl Into<String>) -> Self {
        self.room = Some(room.into());
        self
    }

    /// Sets the correlation id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the payload.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    /// A reply of type `kind` carrying this envelope's `id` and `room`.
    pub fn reply(&self, kind: impl Into<String>) -> Self {
        Self { kind: kind.into(), room: self.room.clone(), id: self.id.clone(), data: Value::Null }
    }

    /// The payload deserialised as `T`; a mismatch is a `bad_request` [`WsError`] naming the
    /// problem, ready to return from a handler with `?`.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, WsError> {
        T::deserialize(&self.data).map_err(WsError::from)
    }

    /// The room, or a `bad_request` [`WsError`] when the message has none.
    pub fn require_room(&self) -> Result<&str, WsError> {
        self.room.as_deref().ok_or_else(|| WsError::bad_request(format!("`{}` messages need a `room`", self.kind)))
    }

    /// Serialises to JSON text.
    pub fn to_json(&self) -> String {
        // A struct of strings and a `Value` always serialises.
        serde_json::to_string(self).unwrap_or_else(|_| format!(r#"{{"type":{}}}"#, Value::from(self.kind.as_str())))
    }

    /// Parses and validates a text frame.
    ///
    /// # Errors
    ///
    /// [`InvalidEnvelope`] for text that is not JSON, not an object, lacks `type`, or whose
    /// members have the wrong shape or length.
    pub fn parse(text: &str) -> Result<Self, InvalidEnvelope> {
        // Derived `Deserialize` would also accept a struct written as an array.
        let parsed = if text.trim_start().starts_with('{') {
            serde_json::from_str::<Envelope>(text)
        } else {
            Err(serde::de::Error::custom("not an object"))
        };
        match parsed {
            Ok(env) => match env.check() {
                Ok(()) => Ok(env),
                Err(message) => Err(InvalidEnvelope { message, id: env.id.filter(|i| valid_id(i)) }),
            },
            Err(e) => {
                // Read what we can of the id, so the error can be correlated.
                let value = serde_json::from_str::<Value>(text);
                let id = value
                    .as_ref()
                    .ok()
                    .and_then(|v| v.get("id"))
                    .and_then(Value::as_str)
                    .filter(|i| valid_id(i))
                    .map(str::to_owned);
                let message = match value {
                    Err(_) => format!("the message is not valid JSON: {e}"),
                    Ok(v) if !v.is_object() => "the message must be a JSON object with a `type`".to_owned(),
                    Ok(_) => format!("the message is not a valid envelope: {e}"),
                };
                Err(InvalidEnvelope { message, id })
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        check_name("type", &self.kind, MAX_TYPE_LEN)?;
        if let Some(room) = &self.room {
            check_name("room", room, MAX_ROOM_LEN)?;
        }
        if let Some(id) = &self.id
            && !valid_id(id)
        {
            return Err(format!("`id` must have at most {MAX_ID_LEN} characters"));
        }
        Ok(())
    }
}

fn valid_id(id: &str) -> bool {
    id.chars().count() <= MAX_ID_LEN
}

/// Checks a `type` or `room` value: 1 to `max` characters, no control characters.
pub(crate) fn check_name(what: &str, value: &str, max: usize) -> Result<(), String> {
    let n = value.chars().count();
    if n == 0 || n > max {
        return Err(format!("`{what}` must have 1 to {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("`{what}` must not contain control characters"));
    }
    Ok(())
}

/// The error envelope: `{"type":"error","code":"...","message":"...","id":"..."}` (`id` only
/// when the offending message had a readable one).
pub(crate) fn error_envelope(code: &str, message: &str, id: Option<&str>) -> OutMessage {
    #[derive(Serialize)]
    struct ErrorEnvelope<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
    }
    let body = ErrorEnvelope { kind: "error", code, message, id };
    OutMessage::json(&body).unwrap_or_else(|_| OutMessage::text(r#"{"type":"error","code":"internal"}"#))
}

/// A message ready to send: serialised once, then shared by every recipient (cloning is a
/// reference-count increment), so a broadcast to 10 000 clients serialises once.
///
/// ```
/// use microframework_ws::{Envelope, OutMessage};
/// let msg = OutMessage::from(Envelope::new("tick").with_data(serde_json::json!(1)));
/// assert_eq!(msg.as_str(), r#"{"type":"tick","data":1}"#);
/// let raw = OutMessage::json(&serde_json::json!({"type": "raw"})).unwrap();
/// assert_eq!(raw.len(), 14);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage(Utf8Bytes);

impl OutMessage {
    /// Any text (send JSON envelopes, which clients expect).
    pub fn text(text: impl Into<String>) -> Self {
        Self(Utf8Bytes::from(text.into()))
    }

    /// Any serialisable value as JSON.
    ///
    /// # Errors
    ///
    /// When `value` does not serialise (a map with non-string keys, a failing `Serialize` impl).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(Self::text)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.as_str().len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn into_message(self) -> Message {
        Message::Text(self.0)
    }
}

impl From<Envelope> for OutMessage {
    fn from(env: Envelope) -> Self {
        Self::text(env.to_json())
    }
}

impl From<&Envelope> for OutMessage {
    fn from(env: &Envelope) -> Self {
        Self::text(env.to_json())
    }
}

impl From<String> for OutMessage {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

impl From<&str> for OutMessage {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> InvalidEnvelope {
        Envelope::parse(text).unwrap_err()
    }

    #[test]
    fn valid_envelopes() {
        let e = Envelope::parse(r#"{"type":"x"}"#).unwrap();
        assert_eq!(e, Envelope::new("x"));
        let e = Envelope::parse(r#"{"type":"x","data":[1,2],"extra":true}"#).unwrap();
        assert_eq!(e.data, serde_json::json!([1, 2]));
        let long = "é".repeat(64);
        assert!(Envelope::parse(&format!(r#"{{"type":"{long}"}}"#)).is_ok(), "lengths count characters");
    }

    #[test]
    fn invalid_envelopes_say_why_and_keep_the_id() {
        assert!(err("not json").message.contains("not valid JSON"));
        assert!(err("[1,2]").message.contains("JSON object"));
        assert!(err("\"x\"").message.contains("JSON object"));
        let e = err(r#"{"id":"42","data":1}"#);
        assert!(e.message.contains("type"), "{}", e.message);
        assert_eq!(e.id.as_deref(), Some("42"));
        let e = err(r#"{"type":"","id":"1"}"#);
        assert!(e.message.contains("1 to 64"));
        assert_eq!(e.id.as_deref(), Some("1"));
        assert!(err(&format!(r#"{{"type":"{}"}}"#, "a".repeat(65))).message.contains("type"));
        assert!(err(&format!(r#"{{"type":"a","room":"{}"}}"#, "r".repeat(129))).message.contains("room"));
        assert!(err(r#"{"type":"a","room":""}"#).message.contains("room"));
        assert!(err(r#"{"type":"a\u0000"}"#).message.contains("control"));
        assert!(err(r#"{"type":5}"#).message.contains("envelope"));
        let e = err(&format!(r#"{{"type":"a","id":"{}"}}"#, "i".repeat(129)));
        assert_eq!(e.id, None, "an over-long id is not echoed");
        assert_eq!(err(r#"{"type":"a","id":7}"#).id, None);
        // Deep nesting is refused by the parser's recursion limit, not a stack overflow.
        let deep = format!(r#"{{"type":"a","data":{}{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
        assert!(Envelope::parse(&deep).is_err());
    }

    #[test]
    fn error_envelope_shape() {
        let m = error_envelope("invalid_message", "bad \"quote\"", Some("9"));
        let v: Value = serde_json::from_str(m.as_str()).unwrap();
        assert_eq!(v, serde_json::json!({"type":"error","code":"invalid_message","message":"bad \"quote\"","id":"9"}));
        let v: Value = serde_json::from_str(error_envelope("x", "y", None).as_str()).unwrap();
        assert!(v.get("id").is_none());
    }

    #[test]
    fn data_as_reports_bad_payloads() {
        #[derive(Deserialize, Debug)]
        struct Say {
            #[allow(dead_code)]
            text: String,
        }
        let env = Envelope::new("say").with_data(serde_json::json!({"txt": 1}));
        let e = env.data_as::<Say>().unwrap_err();
        assert_eq!(e.code(), "bad_request");
        assert!(e.message().contains("text"), "{}", e.message());
        assert_eq!(Envelope::new("say").require_room().unwrap_err().code(), "bad_request");
    }
}

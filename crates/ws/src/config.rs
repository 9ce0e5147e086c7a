//! The `websocket` configuration section.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use microframework_core::{ByteSize, Validate, Validation};

/// What happens when a connection's send queue is full (the client reads slower than the server
/// sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowConsumerPolicy {
    /// Close the connection with `1008` (policy violation, reason `slow consumer`) and count it in
    /// `ws_disconnects_total{reason="slow_consumer"}` (default). The client should reconnect and
    /// resynchronise.
    #[default]
    Disconnect,
    /// Drop the message for that client only, counting it in
    /// `ws_messages_dropped_total{reason="queue_full"}`; the connection stays open.
    DropNewest,
}

impl SlowConsumerPolicy {
    /// The configuration name (`disconnect`, `drop_newest`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disconnect => "disconnect",
            Self::DropNewest => "drop_newest",
        }
    }
}

/// The `websocket` configuration section.
///
/// ```yaml
/// websocket:
///   path: /ws
///   max_connections: 10000
///   send_queue: 256
///   slow_consumer: disconnect      # or drop_newest
///   heartbeat_interval: 15s
///   heartbeat_timeout: 45s
///   max_message_size: 64KiB
///   require_auth: true             # unset: follows auth.jwt.required
///   allowed_origins: []            # empty: any origin
///   max_rooms_per_connection: 100
///   max_messages_per_second: 50    # per connection; faster senders are read slower
///   message_burst: 100
///   close_timeout: 2s
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WsConfig {
    /// Path of the upgrade endpoint (default `/ws`).
    pub path: String,
    /// Open connections allowed at once; further upgrades get `503` (default `10000`).
    pub max_connections: usize,
    /// Messages queued per connection before the [`slow_consumer`](Self::slow_consumer) policy
    /// applies (default `256`).
    pub send_queue: usize,
    /// What to do with a client whose send queue is full (default `disconnect`).
    pub slow_consumer: SlowConsumerPolicy,
    /// How often the server pings each client (default `15s`).
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// A client that sends nothing (no pong, no frame) for this long is dropped as a dead peer
    /// (default `45s`; must exceed `heartbeat_interval`).
    #[serde(with = "humantime_serde")]
    pub heartbeat_timeout: Duration,
    /// The largest message a client may send; a larger one closes the connection with `1009`
    /// (default `64KiB`).
    pub max_message_size: ByteSize,
    /// Refuse the upgrade with `401` unless the client presents a valid token, in the
    /// `Authorization` header or as `?access_token=`. Unset (the default), it follows
    /// `auth.jwt.required`: with `required: true` an anonymous upgrade is refused unless the path
    /// is in `auth.jwt.public_paths`. `false` makes the endpoint public whatever `auth.jwt` says
    /// (a token that is sent is still verified).
    pub require_auth: Option<bool>,
    /// Origins allowed to connect (`https://app.example.com`, exact match, case-insensitive;
    /// `*` allows any). Empty allows any origin (default). A request without an `Origin` header
    /// (a non-browser client) is allowed.
    pub allowed_origins: Vec<String>,
    /// Rooms a client may join with `join` messages (default `100`); the server's own
    /// [`Hub::join`](crate::Hub::join) calls are not limited.
    pub max_rooms_per_connection: usize,
    /// Messages a connection may send per second, sustained (default 50). A client that sends
    /// faster is read no faster than this (its messages wait in its socket, TCP slows it down, none
    /// is lost), so one member flooding a room cannot fill the others' send queues.
    pub max_messages_per_second: u32,
    /// Messages a connection may send at once above the sustained rate (default 100).
    pub message_burst: u32,
    /// How long closing waits for close frames to be written and answered: per connection, and
    /// for all connections at shutdown (default `2s`).
    #[serde(with = "humantime_serde")]
    pub close_timeout: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            path: "/ws".to_owned(),
            max_connections: 10_000,
            send_queue: 256,
            slow_consumer: SlowConsumerPolicy::Disconnect,
            heartbeat_interval: Duration::from_secs(15),
            heartbeat_timeout: Duration::from_secs(45),
            max_message_size: ByteSize::kib(64),
            require_auth: None,
            allowed_origins: Vec::new(),
            max_rooms_per_connection: 100,
            max_messages_per_second: 50,
            message_burst: 100,
            close_timeout: Duration::from_secs(2),
        }
    }
}

/// The largest accepted `max_message_size`.
const MAX_MESSAGE_SIZE_LIMIT: ByteSize = ByteSize::mib(64);

impl Validate for WsConfig {
    fn validate(&self, v: &mut Validation) {
        v.check(
            self.path.starts_with('/') && !self.path.contains(char::is_whitespace),
            "path",
            "a path starting with `/`, such as /ws",
        );
        v.check(self.max_connections > 0, "max_connections", "a number greater than 0");
        v.check((1..=65_536).contains(&self.send_queue), "send_queue", "a number of messages from 1 to 65536");
        v.check(
            self.heartbeat_interval >= Duration::from_millis(10),
            "heartbeat_interval",
            "a duration of at least 10ms, such as 15s",
        );
        v.check(
            self.heartbeat_timeout > self.heartbeat_interval,
            "heartbeat_timeout",
            "a duration longer than `heartbeat_interval`, such as three intervals",
        );
        v.check(
            self.max_message_size >= ByteSize(256) && self.max_message_size <= MAX_MESSAGE_SIZE_LIMIT,
            "max_message_size",
            "a size from 256B to 64MiB, such as 64KiB",
        );
        for (i, origin) in self.allowed_origins.iter().enumerate() {
            let ok = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/')
                    && !origin.contains(char::is_whitespace));
            v.check(
                ok,
                &format!("allowed_origins.{i}"),
                "an origin such as https://app.example.com (scheme and host, no path or trailing `/`), or `*`",
            );
        }
        v.check(self.max_rooms_per_connection > 0, "max_rooms_per_connection", "a number greater than 0");
        v.check(self.max_messages_per_second > 0, "max_messages_per_second", "a number greater than 0");
        v.check(self.message_burst > 0, "message_burst", "a number greater than 0");
        v.check(
            self.close_timeout > Duration::ZERO && self.close_timeout <= Duration::from_secs(60),
            "close_timeout",
            "a duration from 1ms to 60s, such as 2s",
        );
    }
}

impl WsConfig {
    /// Whether `origin` (the request's `Origin` header) may connect.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        if self.allowed_origins.is_empty() {
            return true;
        }
        match origin {
            None => true,
            Some(o) => self.allowed_origins.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(o)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(cfg: &WsConfig) -> Vec<String> {
        let mut v = Validation::new("websocket");
        cfg.validate(&mut v);
        v.into_problems().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn defaults_are_valid() {
        assert!(problems(&WsConfig::default()).is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let cfg = WsConfig {
            path: "ws".into(),
            max_connections: 0,
            send_queue: 0,
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(5),
            max_message_size: ByteSize(10),
            allowed_origins: vec!["example.com".into(), "https://ok.example".into()],
            max_rooms_per_connection: 0,
            close_timeout: Duration::ZERO,
            ..WsConfig::default()
        };
        assert_eq!(
            problems(&cfg),
            [
                "websocket.path",
                "websocket.max_connections",
                "websocket.send_queue",
                "websocket.heartbeat_timeout",
                "websocket.max_message_size",
                "websocket.allowed_origins.0",
                "websocket.max_rooms_per_connection",
                "websocket.close_timeout",
            ]
        );
    }

    #[test]
    fn origins() {
        let any = WsConfig::default();
        assert!(any.origin_allowed(Some("https://evil.example")));
        let cfg = WsConfig { allowed_origins: vec!["https://app.example".into()], ..WsConfig::default() };
        assert!(cfg.origin_allowed(Some("https://APP.example")));
        assert!(!cfg.origin_allowed(Some("https://evil.example")));
        assert!(!cfg.origin_allowed(Some("https://app.example.evil")));
        assert!(cfg.origin_allowed(None), "non-browser clients send no Origin");
    }

    #[test]
    fn parses_yaml_shapes() {
        let cfg: WsConfig = serde_json::from_value(serde_json::json!({
            "slow_consumer": "drop_newest",
            "heartbeat_interval": "200ms",
            "heartbeat_timeout": "1s",
            "max_message_size": "1KiB"
        }))
        .unwrap();
        assert_eq!(cfg.slow_consumer, SlowConsumerPolicy::DropNewest);
        assert_eq!(cfg.heartbeat_interval, Duration::from_millis(200));
        assert_eq!(cfg.max_message_size, ByteSize(1024));
        assert!(serde_json::from_value::<WsConfig>(serde_json::json!({"unknown": 1})).is_err());
        assert!(serde_json::from_value::<WsConfig>(serde_json::json!({"slow_consumer": "block"})).is_err());
    }
}

//! Metric names and cached handles (the hot paths do no registry look-up).

use metrics::{Counter, Gauge};

/// Metric names recorded by this crate. Labels are bounded: `reason` takes only the values
/// listed here.
pub mod names {
    /// Gauge: open WebSocket connections.
    pub const CONNECTIONS: &str = "ws_connections";
    /// Counter: connections accepted since start.
    pub const CONNECTIONS_TOTAL: &str = "ws_connections_total";
    /// Counter: frames received from clients (text and binary).
    pub const MESSAGES_IN: &str = "ws_messages_in_total";
    /// Counter: messages written to clients (not counting pings and close frames).
    pub const MESSAGES_OUT: &str = "ws_messages_out_total";
    /// Counter: messages dropped, by `reason`: `slow_consumer` (the recipient is being
    /// disconnected for falling behind), `queue_full` (policy `drop_newest`), `invalid` (an
    /// invalid or unsupported message from a client).
    pub const MESSAGES_DROPPED: &str = "ws_messages_dropped_total";
    /// Counter: connections closed, by `reason` (see [`DisconnectReason`](crate::DisconnectReason)):
    /// `client`, `slow_consumer`, `dead_peer`, `shutdown`, `server`, `policy`, `error`.
    pub const DISCONNECTS: &str = "ws_disconnects_total";
}

use crate::connection::DisconnectReason;

/// Why a message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    SlowConsumer,
    QueueFull,
    Invalid,
}

#[derive(Debug, Clone)]
pub(crate) struct WsMetrics {
    pub(crate) connections: Gauge,
    pub(crate) connections_total: Counter,
    pub(crate) messages_in: Counter,
    pub(crate) messages_out: Counter,
    dropped: [Counter; 3],
    disconnects: [Counter; DisconnectReason::ALL.len()],
}

impl WsMetrics {
    /// Handles from the global recorder installed at this point (no-ops when there is none).
    pub(crate) fn new() -> Self {
        describe();
        let dropped = |reason: &'static str| metrics::counter!(names::MESSAGES_DROPPED, "reason" => reason);
        Self {
            connections: metrics::gauge!(names::CONNECTIONS),
            connections_total: metrics::counter!(names::CONNECTIONS_TOTAL),
            messages_in: metrics::counter!(names::MESSAGES_IN),
            messages_out: metrics::counter!(names::MESSAGES_OUT),
            dropped: [dropped("slow_consumer"), dropped("queue_full"), dropped("invalid")],
            disconnects: DisconnectReason::ALL.map(|r| metrics::counter!(names::DISCONNECTS, "reason" => r.as_str())),
        }
    }

    pub(crate) fn dropped(&self, reason: DropReason) {
        let i = match reason {
            DropReason::SlowConsumer => 0,
            DropReason::QueueFull => 1,
            DropReason::Invalid => 2,
        };
        self.dropped[i].increment(1);
    }

    pub(crate) fn disconnect(&self, reason: DisconnectReason) {
        if let Some(c) = DisconnectReason::ALL.iter().position(|r| *r == reason).and_then(|i| self.disconnects.get(i)) {
            c.increment(1);
        }
    }
}

fn describe() {
    metrics::describe_gauge!(names::CONNECTIONS, "Open WebSocket connections.");
    metrics::describe_counter!(names::CONNECTIONS_TOTAL, "WebSocket connections accepted.");
    metrics::describe_counter!(names::MESSAGES_IN, "WebSocket frames received from clients.");
    metrics::describe_counter!(names::MESSAGES_OUT, "WebSocket messages written to clients.");
    metrics::describe_counter!(names::MESSAGES_DROPPED, "WebSocket messages dropped, by reason.");
    metrics::describe_counter!(names::DISCONNECTS, "WebSocket connections closed, by reason.");
}

//! The connection registry: ids, rooms, broadcasting with per-connection bounded queues.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::ws::Message;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use microframework_auth::Claims;

use crate::config::{SlowConsumerPolicy, WsConfig};
use crate::connection::DisconnectReason;
use crate::envelope::OutMessage;
use crate::error::SendError;
use crate::metrics::{DropReason, WsMetrics};

/// Close code sent to a slow consumer (policy violation).
pub const CLOSE_SLOW_CONSUMER: u16 = 1008;
/// Close code sent at shutdown (going away).
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// The id of a connection, unique within its hub (never reused while the process runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The numeric value.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The outcome of a broadcast.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastReport {
    /// Recipients whose queue took the message.
    pub delivered: usize,
    /// Recipients that did not get it: queue full (under either policy) or closing.
    pub dropped: usize,
}

/// A close requested for a connection; the first request wins.
#[derive(Debug, Clone)]
pub(crate) struct CloseRequest {
    pub(crate) code: u16,
    pub(crate) reason: String,
    pub(crate) cause: DisconnectReason,
}

/// What the hub shares with a connection's tasks.
pub(crate) struct Peer {
    pub(crate) id: ConnectionId,
    tx: mpsc::Sender<Message>,
    pub(crate) closing: CancellationToken,
    close: Mutex<Option<CloseRequest>>,
    rooms: Mutex<HashSet<Arc<str>>>,
    pub(crate) claims: Option<Claims>,
    pub(crate) remote: Option<SocketAddr>,
}

impl Peer {
    /// Queues `msg` without waiting, applying the slow-consumer policy when the queue is full.
    pub(crate) fn offer(&self, msg: OutMessage, settings: &Settings) -> Result<(), SendError> {
        if self.closing.is_cancelled() {
            return Err(SendError::Closed);
        }
        match self.tx.try_send(msg.into_message()) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => match settings.policy {
                SlowConsumerPolicy::Disconnect => {
                    settings.metrics.dropped(DropReason::SlowConsumer);
                    if self.request_close(CLOSE_SLOW_CONSUMER, "slow consumer", DisconnectReason::SlowConsumer) {
                        tracing::debug!(connection = %self.id, "send queue full: disconnecting the slow client");
                    }
                    Err(SendError::SlowConsumer)
                }
                SlowConsumerPolicy::DropNewest => {
                    settings.metrics.dropped(DropReason::QueueFull);
                    Err(SendError::QueueFull)
                }
            },
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Closed),
        }
    }

    /// Asks the connection's tasks to close it; `false` if a close was already requested.
    pub(crate) fn request_close(&self, code: u16, reason: &str, cause: DisconnectReason) -> bool {
        let mut slot = self.close.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return false;
        }
        *slot = Some(CloseRequest { code, reason: truncate_reason(reason), cause });
        drop(slot);
        self.closing.cancel();
        true
    }

    pub(crate) fn close_request(&self) -> Option<CloseRequest> {
        self.close.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn rooms(&self) -> Vec<String> {
        let mut rooms: Vec<String> =
            self.rooms.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|r| r.to_string()).collect();
        rooms.sort();
        rooms
    }

    pub(crate) fn room_count(&self) -> usize {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A close reason fits in a control frame: at most 123 bytes, cut at a character boundary.
fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// Settings applied by [`crate::router`], read on every send.
pub(crate) struct Settings {
    pub(crate) policy: SlowConsumerPolicy,
    pub(crate) send_queue: usize,
    pub(crate) metrics: WsMetrics,
}

/// The registry of open connections and their rooms. Cheap to clone: clones share the registry.
///
/// Create one, keep a clone wherever the service needs to push messages (HTTP handlers,
/// background tasks), and give one to [`crate::router`].
///
/// Sending never waits for a client: each connection has a bounded queue (`send_queue`) drained
/// by its own writer task, and a full queue applies the `slow_consumer` policy to that client
/// only. A broadcast message is serialised once and shared by every recipient.
///
/// ```
/// use microframework_ws::{Envelope, Hub};
/// let hub = Hub::new();
/// let report = hub.broadcast("lobby", Envelope::new("news").with_data(serde_json::json!("hello")));
/// assert_eq!((report.delivered, report.dropped), (0, 0), "nobody is connected yet");
/// assert_eq!(hub.connection_count(), 0);
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

/// The members of one room.
type Members = HashMap<ConnectionId, Arc<Peer>>;

struct HubInner {
    next_id: AtomicU64,
    peers: RwLock<HashMap<ConnectionId, Arc<Peer>>>,
    rooms: RwLock<HashMap<Arc<str>, Members>>,
    settings: RwLock<Arc<Settings>>,
    /// Connections being opened or open, for `max_connections`.
    slots: AtomicUsize,
    shutting_down: AtomicBool,
    count: watch::Sender<usize>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("connections", &self.connection_count()).finish_non_exhaustive()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// An empty hub with the default settings ([`crate::router`] applies the configured ones).
    pub fn new() -> Self {
        let defaults = WsConfig::default();
        Self {
            inner: Arc::new(HubInner {
                next_id: AtomicU64::new(1),
                peers: RwLock::new(HashMap::new()),
                rooms: RwLock::new(HashMap::new()),
                settings: RwLock::new(Arc::new(Settings {
                    policy: defaults.slow_consumer,
                    send_queue: defaults.send_queue,
                    metrics: WsMetrics::new(),
                })),
                slots: AtomicUsize::new(0),
                shutting_down: AtomicBool::new(false),
                count: watch::Sender::new(0),
            }),
        }
    }

    pub(crate) fn configure(&self, cfg: &WsConfig) {
        let settings = Settings { policy: cfg.slow_consumer, send_queue: cfg.send_queue, metrics: WsMetrics::new() };
        *self.inner.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(settings);
    }

    pub(crate) fn settings(&self) -> Arc<Settings> {
        self.inner.settings.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Open connections.
    pub fn connection_count(&self) -> usize {
        self.inner.peers.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The ids of the open connections, sorted.
    pub fn connections(&self) -> Vec<ConnectionId> {
        let mut ids: Vec<ConnectionId> =
            self.inner.peers.read().unwrap_or_else(|p| p.into_inner()).keys().copied().collect();
        ids.sort();
        ids
    }

    /// Whether `id` is an open connection.
    pub fn is_connected(&self, id: ConnectionId) -> bool {
        self.inner.peers.read().unwrap_or_else(|p| p.into_inner()).contains_key(&id)
    }

    /// Adds connection `id` to `room`; `false` if no such connection is open. Joining twice is
    /// harmless.
    pub fn join(&self, id: ConnectionId, room: &str) -> bool {
        let Some(peer) = self.peer(id) else { return false };
        let mut rooms = self.inner.rooms.write().unwrap_or_else(|p| p.into_inner());
        // Checked under the rooms lock: unregistering takes it too, so a closing connection
        // cannot be left behind in a room.
        if !self.is_connected(id) {
            return false;
        }
        let key: Arc<str> = match rooms.get_key_value(room) {
            Some((k, _)) => k.clone(),
            None => Arc::from(room),
        };
        rooms.entry(key.clone()).or_default().insert(id, peer.clone());
        peer.rooms.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
        true
    }

    /// Removes connection `id` from `room`; `false` if it was not a member.
    pub fn leave(&self, id: ConnectionId, room: &str) -> bool {
        let mut rooms = self.inner.rooms.write().unwrap_or_else(|p| p.into_inner());
        let Some(members) = rooms.get_mut(room) else { return false };
        let Some(peer) = members.remove(&id) else { return false };
        if members.is_empty() {
            rooms.remove(room);
        }
        peer.rooms.lock().unwrap_or_else(|p| p.into_inner()).remove(room);
        true
    }

    /// The members of `room`, sorted.
    pub fn members(&self, room: &str) -> Vec<ConnectionId> {
        let rooms = self.inner.rooms.read().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<ConnectionId> = rooms.get(room).map(|m| m.keys().copied().collect()).unwrap_or_default();
        ids.sort();
        ids
    }

    /// The rooms with at least one member, sorted.
    pub fn rooms(&self) -> Vec<String> {
        let rooms = self.inner.rooms.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = rooms.keys().map(|r| r.to_string()).collect();
        names.sort();
        names
    }

    /// Queues `msg` for every member of `room` without waiting for any of them.
    pub fn broadcast(&self, room: &str, msg: impl Into<OutMessage>) -> BroadcastReport {
        self.broadcast_filtered(room, None, msg.into())
    }

    /// Like [`Hub::broadcast`], skipping connection `except` (typically the sender).
    pub fn broadcast_except(&self, room: &str, except: ConnectionId, msg: impl Into<OutMessage>) -> BroadcastReport {
        self.broadcast_filtered(room, Some(except), msg.into())
    }

    fn broadcast_filtered(&self, room: &str, except: Option<ConnectionId>, msg: OutMessage) -> BroadcastReport {
        let settings = self.settings();
        let rooms = self.inner.rooms.read().unwrap_or_else(|p| p.into_inner());
        let Some(members) = rooms.get(room) else { return BroadcastReport::default() };
        let mut report = BroadcastReport::default();
        for (id, peer) in members {
            if Some(*id) == except {
                continue;
            }
            match peer.offer(msg.clone(), &settings) {
                Ok(()) => report.delivered += 1,
                Err(_) => report.dropped += 1,
            }
        }
        report
    }

    /// Queues `msg` for every open connection.
    pub fn broadcast_all(&self, msg: impl Into<OutMessage>) -> BroadcastReport {
        let msg = msg.into();
        let settings = self.settings();
        let peers = self.inner.peers.read().unwrap_or_else(|p| p.into_inner());
        let mut report = BroadcastReport::default();
        for peer in peers.values() {
            match peer.offer(msg.clone(), &settings) {
                Ok(()) => report.delivered += 1,
                Err(_) => report.dropped += 1,
            }
        }
        report
    }

    /// Queues `msg` for connection `id` without waiting.
    ///
    /// # Errors
    ///
    /// [`SendError`] when the connection is unknown or closing, or its queue is full.
    pub fn send(&self, id: ConnectionId, msg: impl Into<OutMessage>) -> Result<(), SendError> {
        let peer = self.peer(id).ok_or(SendError::UnknownConnection)?;
        peer.offer(msg.into(), &self.settings())
    }

    /// Closes connection `id` with `code` and `reason` after its queued messages; `false` if it
    /// is unknown or already closing.
    pub fn close(&self, id: ConnectionId, code: u16, reason: &str) -> bool {
        self.peer(id).is_some_and(|p| p.request_close(code, reason, DisconnectReason::Server))
    }

    /// Closes every connection with `code` and `reason` after their queued messages; returns how
    /// many were asked to close. Code `1001` counts as [`DisconnectReason::Shutdown`], any other
    /// as [`DisconnectReason::Server`].
    pub fn close_all(&self, code: u16, reason: &str) -> usize {
        let cause = if code == CLOSE_GOING_AWAY { DisconnectReason::Shutdown } else { DisconnectReason::Server };
        let peers: Vec<Arc<Peer>> =
            self.inner.peers.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        peers.iter().filter(|p| p.request_close(code, reason, cause)).count()
    }

    /// Refuses new connections, closes every open one with `1001` (Going Away) and waits up to
    /// `timeout` for them to finish closing; `true` if all did. [`crate::router`] calls this when
    /// the service shuts down.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        self.inner.shutting_down.store(true, Ordering::Release);
        let n = self.close_all(CLOSE_GOING_AWAY, "server shutting down");
        if n > 0 {
            tracing::info!(connections = n, "closing WebSocket connections");
        }
        let done = self.wait_idle(timeout).await;
        if !done {
            tracing::warn!(remaining = self.connection_count(), ?timeout, "WebSocket connections still closing");
        }
        done
    }

    /// Whether [`Hub::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Waits up to `timeout` until no connection is open; `true` if none is.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.count.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0)).await.is_ok_and(|r| r.is_ok())
    }

    fn peer(&self, id: ConnectionId) -> Option<Arc<Peer>> {
        self.inner.peers.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    /// Reserves one of `max` connection slots; `None` when all are taken or shutting down.
    pub(crate) fn try_reserve(&self, max: usize) -> Option<SlotGuard> {
        if self.is_shutting_down() {
            return None;
        }
        self.inner
            .slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| SlotGuard { hub: self.clone() })
    }

    /// Registers a new connection and returns its shared state and the receiving end of its
    /// queue.
    pub(crate) fn register(
        &self,
        claims: Option<Claims>,
        remote: Option<SocketAddr>,
    ) -> (Arc<Peer>, mpsc::Receiver<Message>, Registration) {
        let settings = self.settings();
        let (tx, rx) = mpsc::channel(settings.send_queue.max(1));
        let id = ConnectionId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let peer = Arc::new(Peer {
            id,
            tx,
            closing: CancellationToken::new(),
            close: Mutex::new(None),
            rooms: Mutex::new(HashSet::new()),
            claims,
            remote,
        });
        {
            let mut peers = self.inner.peers.write().unwrap_or_else(|p| p.into_inner());
            peers.insert(id, peer.clone());
            self.inner.count.send_replace(peers.len());
        }
        settings.metrics.connections.increment(1.0);
        settings.metrics.connections_total.increment(1);
        // Shutdown may have started between the upgrade and now.
        if self.is_shutting_down() {
            peer.request_close(CLOSE_GOING_AWAY, "server shutting down", DisconnectReason::Shutdown);
        }
        (peer, rx, Registration { hub: self.clone(), id, metrics: settings.metrics.clone() })
    }

    fn unregister(&self, id: ConnectionId) {
        let mut rooms = self.inner.rooms.write().unwrap_or_else(|p| p.into_inner());
        let peer = {
            let mut peers = self.inner.peers.write().unwrap_or_else(|p| p.into_inner());
            let peer = peers.remove(&id);
            self.inner.count.send_replace(peers.len());
            peer
        };
        let Some(peer) = peer else { return };
        let joined: Vec<Arc<str>> = peer.rooms.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
        for room in joined {
            if let Some(members) = rooms.get_mut(&room) {
                members.remove(&id);
                if members.is_empty() {
                    rooms.remove(&room);
                }
            }
        }
    }
}

/// Holds a connection slot until dropped.
pub(crate) struct SlotGuard {
    hub: Hub,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.hub.inner.slots.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Removes the connection from the hub when dropped (even if its task panics or is aborted).
pub(crate) struct Registration {
    hub: Hub,
    id: ConnectionId,
    metrics: WsMetrics,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
        self.metrics.connections.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rooms_queues_and_policies() {
        let hub = Hub::new();
        hub.configure(&WsConfig { send_queue: 2, ..WsConfig::default() });
        let (a, mut rx_a, reg_a) = hub.register(None, None);
        let (b, _rx_b, reg_b) = hub.register(None, None);
        assert_ne!(a.id, b.id);
        assert!(hub.join(a.id, "r") && hub.join(b.id, "r") && hub.join(a.id, "other"));
        assert_eq!(hub.members("r"), vec![a.id, b.id]);
        assert_eq!(a.rooms(), vec!["other".to_owned(), "r".to_owned()]);
        assert_eq!(hub.broadcast("r", "1"), BroadcastReport { delivered: 2, dropped: 0 });
        assert_eq!(hub.broadcast_except("r", a.id, "2"), BroadcastReport { delivered: 1, dropped: 0 });
        // b's queue (2) is now full: the next message disconnects it, a still gets it.
        assert_eq!(hub.broadcast("r", "3"), BroadcastReport { delivered: 1, dropped: 1 });
        assert!(b.closing.is_cancelled());
        assert_eq!(b.close_request().map(|c| (c.code, c.cause)), Some((1008, DisconnectReason::SlowConsumer)));
        assert_eq!(hub.send(b.id, "4"), Err(SendError::Closed));
        assert!(matches!(rx_a.try_recv(), Ok(Message::Text(t)) if t.as_str() == "1"));

        drop(reg_b);
        assert_eq!(hub.members("r"), vec![a.id]);
        assert!(!hub.join(b.id, "r"), "a closed connection cannot join");
        assert_eq!(hub.send(b.id, "x"), Err(SendError::UnknownConnection));
        assert!(hub.leave(a.id, "r") && !hub.leave(a.id, "r"));
        assert_eq!(hub.rooms(), vec!["other".to_owned()]);
        drop(reg_a);
        assert!(hub.rooms().is_empty());
        assert!(hub.wait_idle(Duration::from_millis(10)).await);
    }

    #[tokio::test]
    async fn drop_newest_keeps_the_connection() {
        let hub = Hub::new();
        hub.configure(&WsConfig {
            send_queue: 1,
            slow_consumer: SlowConsumerPolicy::DropNewest,
            ..WsConfig::default()
        });
        let (a, _rx, _reg) = hub.register(None, None);
        assert_eq!(hub.send(a.id, "1"), Ok(()));
        assert_eq!(hub.send(a.id, "2"), Err(SendError::QueueFull));
        assert!(!a.closing.is_cancelled());
        assert_eq!(hub.broadcast_all("3"), BroadcastReport { delivered: 0, dropped: 1 });
    }

    #[tokio::test]
    async fn slots_and_shutdown() {
        let hub = Hub::new();
        let one = hub.try_reserve(2).unwrap();
        let _two = hub.try_reserve(2).unwrap();
        assert!(hub.try_reserve(2).is_none());
        drop(one);
        let _three = hub.try_reserve(2).unwrap();
        let (a, _rx, reg) = hub.register(None, None);
        assert!(!hub.wait_idle(Duration::from_millis(10)).await);
        let waiter = tokio::spawn({
            let hub = hub.clone();
            async move { hub.shutdown(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(a.close_request().map(|c| (c.code, c.cause)), Some((1001, DisconnectReason::Shutdown)));
        assert!(hub.try_reserve(10).is_none(), "no new connections while shutting down");
        drop(reg);
        assert!(waiter.await.unwrap());
    }

    #[test]
    fn reasons_fit_a_control_frame() {
        assert_eq!(truncate_reason(&"é".repeat(100)).len(), 122);
        assert_eq!(truncate_reason("short"), "short");
    }
}

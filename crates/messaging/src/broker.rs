//! The provider seam: what a broker implements ([`Broker`], [`Consumer`], [`Delivery`]).
//!
//! Providers are thin: they move bytes and acknowledgements. Everything the API promises on top
//! (message ids, trace context, retries with backoff, dead letters, per-key lanes, metrics,
//! draining) is done once, by [`Messaging`](crate::Messaging), for every provider alike.

use std::time::Duration;

use async_trait::async_trait;

use crate::message::{Message, Outgoing};

/// The header a request carries so that [`Broker::reply`] finds its requester (providers without
/// a native reply address).
pub(crate) const REPLY_TO: &str = "mf-reply-to";

/// Why a messaging operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessagingError {
    /// The broker cannot be reached (down, refusing, wrong address, bad credentials).
    #[error("cannot reach {provider} at {url}: {reason}")]
    Unreachable {
        /// The provider (`nats`, `rabbitmq`, ...).
        provider: &'static str,
        /// Its URL, password removed.
        url: String,
        /// What the client said.
        reason: String,
    },
    /// The broker did not take a message.
    #[error("publishing to `{topic}` failed: {reason}")]
    Publish {
        /// The topic.
        topic: String,
        /// What the client said.
        reason: String,
    },
    /// A subscription could not be set up.
    #[error("subscribing to `{topic}` failed: {reason}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// What the client said.
        reason: String,
    },
    /// Acknowledging or rejecting a delivery failed; the broker will deliver the message again.
    #[error("acknowledging a message of `{topic}` failed: {reason}")]
    Ack {
        /// The topic.
        topic: String,
        /// What the client said.
        reason: String,
    },
    /// The provider has no such operation (request-reply on a broker without it).
    #[error("{provider} does not support {operation}")]
    Unsupported {
        /// The provider.
        provider: &'static str,
        /// The operation.
        operation: &'static str,
    },
    /// No reply within the deadline.
    #[error("no reply on `{topic}` within {timeout:?}")]
    Timeout {
        /// The topic.
        topic: String,
        /// The deadline.
        timeout: Duration,
    },
    /// Messaging has not connected yet, or has shut down.
    #[error("messaging is not connected: {0}")]
    NotConnected(String),
    /// A message could not be encoded.
    #[error("cannot encode the message: {0}")]
    Encode(String),
}

/// What a subscription asks the broker for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeSpec {
    /// The topic.
    pub topic: String,
    /// The consumer group: the replicas of a service that share a group share the messages (each
    /// message goes to one of them) and the broker keeps the group's position while they are
    /// away. `None`: every subscriber gets every message published while it is subscribed
    /// (fan-out, such as GraphQL subscriptions across replicas).
    pub group: Option<String>,
    /// How many deliveries may be unacknowledged at once (the prefetch).
    pub prefetch: u32,
}

/// A message broker, connected.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// The provider's name (`memory`, `nats`, ...).
    fn provider(&self) -> &'static str;

    /// Publishes one message; `Ok` once the broker has taken it (persisted where it persists).
    async fn publish(&self, message: Outgoing) -> Result<(), MessagingError>;

    /// Publishes messages in order; `Ok` once the broker has taken all of them. The default
    /// publishes one by one; providers with a batch call use it.
    async fn publish_batch(&self, messages: Vec<Outgoing>) -> Result<(), MessagingError> {
        for message in messages {
            self.publish(message).await?;
        }
        Ok(())
    }

    /// Starts consuming `spec`.
    async fn subscribe(&self, spec: &SubscribeSpec) -> Result<Box<dyn Consumer>, MessagingError>;

    /// Sends `message` and waits for one reply, where the broker supports request-reply.
    async fn request(&self, message: Outgoing, timeout: Duration) -> Result<Message, MessagingError> {
        let _ = (message, timeout);
        Err(MessagingError::Unsupported { provider: self.provider(), operation: "request-reply" })
    }

    /// Sends `reply` to the requester of `request`: [`Broker::request`]'s other half.
    async fn reply(&self, request: &Message, reply: Outgoing) -> Result<(), MessagingError> {
        let _ = (request, reply);
        Err(MessagingError::Unsupported { provider: self.provider(), operation: "request-reply" })
    }

    /// Whether the broker answers now (readiness).
    async fn ping(&self) -> Result<(), MessagingError>;

    /// Flushes what is buffered and disconnects.
    async fn close(&self) {}
}

/// The deliveries of one subscription.
#[async_trait]
pub trait Consumer: Send + 'static {
    /// The next delivery. Waits for one; reconnects by itself when the connection drops
    /// (returning `Err` for each failed attempt so that the caller can log it and back off).
    /// `Ok(None)` once the consumer is closed.
    async fn next(&mut self) -> Result<Option<Box<dyn Delivery>>, MessagingError>;

    /// Stops fetching. Deliveries already handed out can still be acknowledged; the broker
    /// delivers the unacknowledged ones again later.
    async fn close(&mut self) {}
}

/// One delivery of a message, to be settled exactly once.
///
/// Dropping it unsettled leaves the message to the broker, which delivers it again (after the
/// connection closes, or the broker's acknowledgement deadline).
#[async_trait]
pub trait Delivery: Send + Sync + 'static {
    /// The message.
    fn message(&self) -> &Message;

    /// Done: the broker forgets the message (the consumer group's position moves past it).
    async fn ack(self: Box<Self>) -> Result<(), MessagingError>;

    /// Failed: deliver the message again after `delay`, counting one more attempt.
    async fn nack(self: Box<Self>, delay: Duration) -> Result<(), MessagingError>;
}

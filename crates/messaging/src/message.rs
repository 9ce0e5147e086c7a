//! Messages: what a publisher sends ([`Outgoing`]) and what a handler receives ([`Message`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;

/// The header holding a message's id, assigned at publish unless the publisher set one. The id
/// stays the same across redeliveries, so a consumer can recognise a duplicate.
pub const MESSAGE_ID: &str = "mf-message-id";

/// The header holding the delivery attempt on brokers that do not count deliveries themselves
/// (the framework republishes a message to retry it there).
pub const ATTEMPT: &str = "mf-attempt";

/// Headers: text names and values, in name order.
pub type Headers = BTreeMap<String, String>;

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The topic (NATS subject, RabbitMQ routing key, Kafka topic, MQTT topic, SQS queue).
    pub topic: String,
    /// The ordering key: messages with the same key are delivered in publish order where the
    /// broker promises it (Kafka partition key, NATS and in-process always, RabbitMQ per queue).
    pub key: Option<String>,
    /// Headers, delivered with the message.
    pub headers: Headers,
    /// The payload.
    pub payload: Bytes,
}

impl Outgoing {
    /// A message with `payload` for `topic`, no key and no headers.
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self { topic: topic.into(), key: None, headers: Headers::new(), payload: payload.into() }
    }

    /// A message whose payload is `value` as JSON, with `content-type: application/json`.
    ///
    /// # Errors
    ///
    /// When `value` cannot be serialised (a map with non-string keys, a failing `Serialize`).
    pub fn json<T: Serialize + ?Sized>(topic: impl Into<String>, value: &T) -> Result<Self, serde_json::Error> {
        let payload = serde_json::to_vec(value)?;
        Ok(Self::new(topic, payload).header("content-type", "application/json"))
    }

    /// Sets the ordering key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// The message's id ([`MESSAGE_ID`]), once published.
    pub fn id(&self) -> Option<&str> {
        self.headers.get(MESSAGE_ID).map(String::as_str)
    }
}

/// A message as a handler receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its id ([`MESSAGE_ID`]); the same on every delivery of the message.
    pub id: String,
    /// The topic it was published to.
    pub topic: String,
    /// Its ordering key.
    pub key: Option<String>,
    /// Its headers.
    pub headers: Headers,
    /// Its payload.
    pub payload: Bytes,
    /// Which delivery this is: 1 the first time, 2 after one failure, ...
    pub attempt: u32,
}

impl Message {
    /// A message as delivered from `outgoing` (the in-process broker, tests).
    pub fn from_outgoing(outgoing: Outgoing, attempt: u32) -> Self {
        let id = outgoing.headers.get(MESSAGE_ID).cloned().unwrap_or_default();
        Self {
            id,
            topic: outgoing.topic,
            key: outgoing.key,
            headers: outgoing.headers,
            payload: outgoing.payload,
            attempt,
        }
    }

    /// The message as it would be published again (to retry it or to redrive a dead letter).
    pub fn to_outgoing(&self) -> Outgoing {
        Outgoing {
            topic: self.topic.clone(),
            key: self.key.clone(),
            headers: self.headers.clone(),
            payload: self.payload.clone(),
        }
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The payload as JSON.
    ///
    /// # Errors
    ///
    /// When the payload is not JSON of type `T`.
    pub fn json<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

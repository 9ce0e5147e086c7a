//! NATS JetStream (`messaging.provider: nats`, feature `nats`).
//!
//! - Topics are subjects of one stream (`messaging.nats.stream`, default `MICROFRAMEWORK`, file
//!   storage) that every service on the server shares; a topic is added to the stream's subjects
//!   the first time a service publishes or subscribes to it, unless `messaging.nats.subjects`
//!   fixes them.
//! - A consumer group is a durable pull consumer named after the group and topic; fan-out is an
//!   ephemeral consumer that starts at new messages.
//! - Acknowledgement is explicit; a nack asks the server to deliver again after the backoff
//!   (`-NAK` with a delay); the server counts deliveries (the attempt). A delivery neither acked
//!   nor nacked (its process died, or it was fetched but not started when the subscription
//!   drained) is delivered again after `messaging.nats.ack_wait`, which must exceed
//!   `consumer.handler_timeout` so that a slow handler is not raced by a second delivery. The message id travels as
//!   `Nats-Msg-Id` too, so the stream drops a re-published duplicate within its duplicate window.
//! - The client reconnects by itself; a pull that fails while the server is away is made again.
//! - Request-reply: the request is stored like any message and carries a core NATS inbox in
//!   `mf-reply-to`; the reply goes to that inbox.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull, stream};
use async_nats::{ConnectOptions, Event, HeaderMap};
use async_trait::async_trait;
use futures_util::StreamExt;

use crate::broker::{Broker, Consumer, Delivery, MessagingError, REPLY_TO, SubscribeSpec};
use crate::config::MessagingConfig;
use crate::message::{Headers, MESSAGE_ID, Message, Outgoing};

/// The header that carries the ordering key (NATS has no key of its own).
const KEY: &str = "mf-key";
/// JetStream's de-duplication header.
const NATS_MSG_ID: &str = "Nats-Msg-Id";

/// The NATS JetStream broker.
pub struct NatsBroker {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: String,
    /// `messaging.nats.subjects` was set: the stream's subjects are not ours to change.
    fixed_subjects: bool,
    max_age: Duration,
    ack_wait: Duration,
    /// Topics known to be captured by the stream.
    known: Mutex<HashSet<String>>,
    url: String,
}

impl std::fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBroker").field("url", &self.url).field("stream", &self.stream).finish_non_exhaustive()
    }
}

/// Connects to the server of `config` and makes sure the stream exists.
pub(crate) async fn connect(config: &MessagingConfig, service: &str) -> Result<Arc<dyn Broker>, MessagingError> {
    let url = config.url.clone().unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let shown = crate::redact(&url);
    let unreachable = |reason: String| MessagingError::Unreachable { provider: "nats", url: shown.clone(), reason };
    let events_url = shown.clone();
    let options = ConnectOptions::new()
        .name(service)
        .connection_timeout(config.connect_timeout)
        .max_reconnects(None)
        .event_callback(move |event| {
            let url = events_url.clone();
            async move {
                match event {
                    Event::Disconnected => tracing::warn!(%url, "disconnected from NATS; reconnecting"),
                    Event::Connected => tracing::info!(%url, "connected to NATS"),
                    other => tracing::debug!(%url, event = %other, "NATS event"),
                }
            }
        });
    let client = tokio::time::timeout(config.connect_timeout + Duration::from_secs(1), options.connect(url.as_str()))
        .await
        .map_err(|_| unreachable(format!("no connection within {:?}", config.connect_timeout)))?
        .map_err(|e| unreachable(e.to_string()))?;
    let js = jetstream::new(client.clone());
    let stream = if config.nats.stream.is_empty() { "MICROFRAMEWORK".to_owned() } else { config.nats.stream.clone() };
    let broker = NatsBroker {
        client,
        js,
        stream,
        fixed_subjects: !config.nats.subjects.is_empty(),
        max_age: config.nats.max_age,
        ack_wait: config.nats.ack_wait,
        known: Mutex::new(HashSet::new()),
        url: shown.clone(),
    };
    broker.create_stream(&config.nats.subjects).await.map_err(unreachable)?;
    Ok(Arc::new(broker))
}

impl NatsBroker {
    fn stream_config(&self, subjects: Vec<String>) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects,
            max_age: self.max_age,
            storage: stream::StorageType::File,
            ..Default::default()
        }
    }

    /// Creates the stream unless it exists (with `subjects`, or a placeholder subject that
    /// topics join later).
    async fn create_stream(&self, subjects: &[String]) -> Result<(), String> {
        if self.js.get_stream(&self.stream).await.is_ok() {
            return Ok(());
        }
        let subjects = if subjects.is_empty() {
            vec![format!("_mf.{}.unused", self.stream.to_lowercase())]
        } else {
            subjects.to_vec()
        };
        match self.js.create_stream(self.stream_config(subjects)).await {
            Ok(_) => Ok(()),
            // Another replica created it meanwhile.
            Err(_) if self.js.get_stream(&self.stream).await.is_ok() => Ok(()),
            Err(e) => Err(format!("cannot create the JetStream stream `{}` (is JetStream enabled?): {e}", self.stream)),
        }
    }

    /// Makes sure the stream captures `topic`.
    async fn ensure_subject(&self, topic: &str) -> Result<stream::Stream, String> {
        let mut last = String::new();
        for _ in 0..5 {
            let mut stream = match self.js.get_stream(&self.stream).await {
                Ok(stream) => stream,
                Err(e) => {
                    last = format!("the stream `{}` is not available: {e}", self.stream);
                    self.create_stream(&[]).await.ok();
                    continue;
                }
            };
            if self.known_subject(topic) {
                return Ok(stream);
            }
            let info = stream.info().await.map_err(|e| e.to_string())?.clone();
            if info.config.subjects.iter().any(|s| subject_matches(s, topic)) {
                self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(topic.to_owned());
                return Ok(stream);
            }
            if self.fixed_subjects {
                return Err(format!(
                    "the stream `{}` does not capture `{topic}`; add it to messaging.nats.subjects",
                    self.stream
                ));
            }
            let mut config = info.config.clone();
            config.subjects.push(topic.to_owned());
            config.subjects.retain(|s| !s.starts_with("_mf."));
            match self.js.update_stream(config).await {
                Ok(_) => {}
                // Another replica changed the stream meanwhile: look again.
                Err(e) => last = format!("cannot add `{topic}` to the stream `{}`: {e}", self.stream),
            }
        }
        Err(last)
    }

    fn known_subject(&self, topic: &str) -> bool {
        self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(topic)
    }

    async fn send(&self, message: Outgoing) -> Result<jetstream::context::PublishAckFuture, MessagingError> {
        let topic = message.topic.clone();
        let publish_err = |reason: String| MessagingError::Publish { topic: topic.clone(), reason };
        self.ensure_subject(&message.topic).await.map_err(publish_err)?;
        let headers = to_headers(&message);
        self.js
            .publish_with_headers(message.topic.clone(), headers, message.payload)
            .await
            .map_err(|e| publish_err(e.to_string()))
    }
}

fn to_headers(message: &Outgoing) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in &message.headers {
        headers.insert(name.as_str(), value.as_str());
    }
    if let Some(id) = message.headers.get(MESSAGE_ID) {
        headers.insert(NATS_MSG_ID, id.as_str());
    }
    if let Some(key) = &message.key {
        headers.insert(KEY, key.as_str());
    }
    headers
}

fn from_nats(subject: &str, headers: Option<&HeaderMap>, payload: bytes::Bytes, attempt: u32) -> Message {
    let mut out = Headers::new();
    let mut key = None;
    if let Some(headers) = headers {
        for (name, values) in headers.iter() {
            let name: &str = name.as_ref();
            let Some(value) = values.first() else { continue };
            match name {
                NATS_MSG_ID => {}
                KEY => key = Some(value.as_str().to_owned()),
                _ => {
                    out.insert(name.to_owned(), value.as_str().to_owned());
                }
            }
        }
    }
    let id = out.get(MESSAGE_ID).cloned().unwrap_or_default();
    Message { id, topic: subject.to_owned(), key, headers: out, payload, attempt }
}

/// Whether the NATS subject pattern `pattern` (with `*` and `>`) matches `subject`.
fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A durable consumer's name: the group and topic, made safe, and a hash of both (two pairs that
/// read the same once made safe still differ).
fn consumer_name(group: &str, topic: &str) -> String {
    let safe = |s: &str| {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect::<String>()
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (group, topic).hash(&mut h);
    format!("{}__{}__{:08x}", safe(group), safe(topic), h.finish() as u32)
}

#[async_trait]
impl Broker for NatsBroker {
    fn provider(&self) -> &'static str {
        "nats"
    }

    async fn publish(&self, message: Outgoing) -> Result<(), MessagingError> {
        let topic = message.topic.clone();
        let ack = self.send(message).await?;
        ack.await.map(|_| ()).map_err(|e| MessagingError::Publish { topic, reason: e.to_string() })
    }

    /// Sends every message, then waits for the server's acknowledgements.
    async fn publish_batch(&self, messages: Vec<Outgoing>) -> Result<(), MessagingError> {
        let mut acks = Vec::with_capacity(messages.len());
        for message in messages {
            let topic = message.topic.clone();
            acks.push((topic, self.send(message).await?));
        }
        for (topic, ack) in acks {
            ack.await.map_err(|e| MessagingError::Publish { topic, reason: e.to_string() })?;
        }
        Ok(())
    }

    async fn subscribe(&self, spec: &SubscribeSpec) -> Result<Box<dyn Consumer>, MessagingError> {
        let sub_err = |reason: String| MessagingError::Subscribe { topic: spec.topic.clone(), reason };
        let stream = self.ensure_subject(&spec.topic).await.map_err(sub_err)?;
        let mut config = pull::Config {
            filter_subject: spec.topic.clone(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            // The framework counts attempts and dead-letters; the server delivers until acked.
            max_deliver: -1,
            max_ack_pending: i64::from(spec.prefetch.max(1)),
            ..Default::default()
        };
        let consumer = match &spec.group {
            Some(group) => {
                let name = consumer_name(group, &spec.topic);
                config.durable_name = Some(name.clone());
                config.deliver_policy = jetstream::consumer::DeliverPolicy::All;
                stream.get_or_create_consumer(&name, config).await.map_err(|e| sub_err(e.to_string()))?
            }
            None => {
                config.deliver_policy = jetstream::consumer::DeliverPolicy::New;
                config.inactive_threshold = Duration::from_secs(60);
                stream.create_consumer(config).await.map_err(|e| sub_err(e.to_string()))?
            }
        };
        Ok(Box::new(NatsConsumer {
            consumer,
            messages: None,
            topic: spec.topic.clone(),
            batch: spec.prefetch.max(1) as usize,
        }))
    }

    async fn request(&self, message: Outgoing, timeout: Duration) -> Result<Message, MessagingError> {
        let topic = message.topic.clone();
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| MessagingError::Publish { topic: topic.clone(), reason: e.to_string() })?;
        self.publish(message.header(REPLY_TO, inbox)).await?;
        match tokio::time::timeout(timeout, replies.next()).await {
            Ok(Some(reply)) => Ok(from_nats(&reply.subject, reply.headers.as_ref(), reply.payload, 1)),
            _ => Err(MessagingError::Timeout { topic, timeout }),
        }
    }

    async fn reply(&self, request: &Message, reply: Outgoing) -> Result<(), MessagingError> {
        let Some(inbox) = request.header(REPLY_TO) else {
            return Err(MessagingError::Publish { topic: reply.topic, reason: "the message is not a request".into() });
        };
        let headers = to_headers(&reply);
        self.client
            .publish_with_headers(inbox.to_owned(), headers, reply.payload)
            .await
            .map_err(|e| MessagingError::Publish { topic: inbox.to_owned(), reason: e.to_string() })?;
        self.client
            .flush()
            .await
            .map_err(|e| MessagingError::Publish { topic: inbox.to_owned(), reason: e.to_string() })
    }

    async fn ping(&self) -> Result<(), MessagingError> {
        let unreachable =
            |reason: String| MessagingError::Unreachable { provider: "nats", url: self.url.clone(), reason };
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(unreachable(format!("not connected ({})", self.client.connection_state())));
        }
        // A flush waits for the reconnection while the server is away: bound it.
        match tokio::time::timeout(Duration::from_secs(2), self.client.flush()).await {
            Ok(outcome) => outcome.map_err(|e| unreachable(e.to_string())),
            Err(_) => Err(unreachable("no answer within 2s".into())),
        }
    }

    async fn close(&self) {
        if let Err(e) = self.client.drain().await {
            tracing::debug!(error = %e, "draining the NATS connection");
        }
    }
}

struct NatsConsumer {
    consumer: jetstream::consumer::Consumer<pull::Config>,
    messages: Option<pull::Stream>,
    topic: String,
    batch: usize,
}

#[async_trait]
impl Consumer for NatsConsumer {
    async fn next(&mut self) -> Result<Option<Box<dyn Delivery>>, MessagingError> {
        let fetch_err = |topic: &str, reason: String| MessagingError::Subscribe { topic: topic.to_owned(), reason };
        let messages = match &mut self.messages {
            Some(messages) => messages,
            None => {
                let stream = self
                    .consumer
                    .stream()
                    .max_messages_per_batch(self.batch)
                    .heartbeat(Duration::from_secs(5))
                    .expires(Duration::from_secs(30))
                    .messages()
                    .await
                    .map_err(|e| fetch_err(&self.topic, e.to_string()))?;
                self.messages.insert(stream)
            }
        };
        match messages.next().await {
            Some(Ok(msg)) => {
                let attempt = msg.info().map(|i| u32::try_from(i.delivered).unwrap_or(1)).unwrap_or(1).max(1);
                let message = from_nats(&msg.subject, msg.headers.as_ref(), msg.payload.clone(), attempt);
                Ok(Some(Box::new(NatsDelivery { msg: Some(msg), message })))
            }
            Some(Err(e)) => {
                // Pull again on the next call (the server may have restarted).
                self.messages = None;
                Err(fetch_err(&self.topic, e.to_string()))
            }
            None => {
                self.messages = None;
                Err(fetch_err(&self.topic, "the message stream ended".into()))
            }
        }
    }

    async fn close(&mut self) {
        self.messages = None;
    }
}

/// A delivery. Dropped unsettled (fetched but not started when the subscription drained), it is
/// left alone and the server delivers it again after `messaging.nats.ack_wait`: a negative
/// acknowledgement would send it at once, possibly to a pull request of the closing
/// subscription that nobody reads any more.
struct NatsDelivery {
    msg: Option<jetstream::Message>,
    message: Message,
}

impl NatsDelivery {
    async fn settle(mut self: Box<Self>, kind: AckKind) -> Result<(), MessagingError> {
        let Some(msg) = self.msg.take() else { return Ok(()) };
        msg.ack_with(kind)
            .await
            .map_err(|e| MessagingError::Ack { topic: self.message.topic.clone(), reason: e.to_string() })
    }
}

#[async_trait]
impl Delivery for NatsDelivery {
    fn message(&self) -> &Message {
        &self.message
    }

    async fn ack(self: Box<Self>) -> Result<(), MessagingError> {
        self.settle(AckKind::Ack).await
    }

    async fn nack(self: Box<Self>, delay: Duration) -> Result<(), MessagingError> {
        self.settle(AckKind::Nak(Some(delay))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_like_nats() {
        assert!(subject_matches("orders.created", "orders.created"));
        assert!(subject_matches("orders.*", "orders.created"));
        assert!(subject_matches("orders.>", "orders.created.eu"));
        assert!(!subject_matches("orders.*", "orders.created.eu"));
        assert!(!subject_matches("orders.>", "orders"));
        assert!(!subject_matches("orders", "orders.created"));
    }

    #[test]
    fn consumer_names_are_safe_and_distinct() {
        let a = consumer_name("billing", "users.created");
        assert!(a.starts_with("billing__users_created__"), "{a}");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        assert_ne!(consumer_name("a.b", "c"), consumer_name("a", "b.c"));
    }
}

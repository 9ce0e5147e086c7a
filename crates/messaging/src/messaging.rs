//! [`Messaging`]: the handle services publish through, and the consumer runtime every provider
//! shares.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;
use metrics::{counter, gauge, histogram};
use microframework_telemetry::metrics::names;
use microframework_telemetry::{TRACEPARENT, TraceContext};
use rand::Rng;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::broker::{Broker, Delivery, MessagingError, SubscribeSpec};
use crate::config::ConsumerConfig;
use crate::dead_letter::{DeadLetter, DeadLetterStore, MemoryDeadLetters};
use crate::message::{ATTEMPT, MESSAGE_ID, Message, Outgoing};
use crate::subscription::{Handler, HandlerError, Subscription};

/// The header a redriven dead letter carries: only the group that dead-lettered it handles it
/// again; the topic's other groups skip it (they handled it the first time).
pub const REDRIVE_FOR: &str = "mf-redrive-for";

/// The header of a redriven dead letter naming the message id it had.
pub const REDRIVEN_FROM: &str = "mf-redriven-from";

/// Publishing, request-reply and dead letters of a service. Cloning is cheap; the plugin
/// provides one (`ctx.require::<Messaging>()`).
#[derive(Clone)]
pub struct Messaging {
    inner: Arc<Inner>,
}

struct Inner {
    service: String,
    broker: RwLock<Option<Arc<dyn Broker>>>,
    dead_letters: Arc<dyn DeadLetterStore>,
}

impl std::fmt::Debug for Messaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let provider = self.broker().ok().map(|b| b.provider());
        f.debug_struct("Messaging").field("service", &self.inner.service).field("provider", &provider).finish()
    }
}

impl Messaging {
    /// A handle for `service` that is not connected yet ([`Messaging::connect`]), keeping dead
    /// letters in `dead_letters`.
    pub fn new(service: impl Into<String>, dead_letters: Arc<dyn DeadLetterStore>) -> Self {
        Self { inner: Arc::new(Inner { service: service.into(), broker: RwLock::new(None), dead_letters }) }
    }

    /// A handle on `broker`, with dead letters in memory: for tests and programs without the
    /// plugin.
    pub fn with_broker(service: impl Into<String>, broker: Arc<dyn Broker>) -> Self {
        let messaging = Self::new(service, Arc::new(MemoryDeadLetters::new(10_000)));
        messaging.connect(broker);
        messaging
    }

    /// Uses `broker` from now on.
    pub fn connect(&self, broker: Arc<dyn Broker>) {
        *self.inner.broker.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(broker);
    }

    /// The service's name: the default consumer group.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// The broker, once connected.
    ///
    /// # Errors
    ///
    /// [`MessagingError::NotConnected`] before the broker was reached.
    pub fn broker(&self) -> Result<Arc<dyn Broker>, MessagingError> {
        self.inner
            .broker
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| MessagingError::NotConnected("the broker has not been reached yet".into()))
    }

    /// Publishes `message`, and returns its id. The message gets an id ([`MESSAGE_ID`]) unless it
    /// has one, and the current trace context (`traceparent`: the HTTP request's or the handled
    /// message's trace, else a new one) unless it has one.
    ///
    /// # Errors
    ///
    /// The broker is not connected or did not take the message.
    pub async fn publish(&self, message: Outgoing) -> Result<String, MessagingError> {
        let broker = self.broker()?;
        let message = prepare(message);
        let id = message.headers.get(MESSAGE_ID).cloned().unwrap_or_default();
        let topic = message.topic.clone();
        let outcome = broker.publish(message).await;
        record_publish(&topic, outcome.is_ok());
        outcome.map(|()| id)
    }

    /// Publishes `value` as JSON to `topic` (see [`Messaging::publish`]).
    ///
    /// # Errors
    ///
    /// `value` does not serialise, or publishing failed.
    pub async fn publish_json<T: Serialize + ?Sized>(&self, topic: &str, value: &T) -> Result<String, MessagingError> {
        let message = Outgoing::json(topic, value).map_err(|e| MessagingError::Encode(e.to_string()))?;
        self.publish(message).await
    }

    /// Publishes `messages` in order, and returns their ids; `Ok` once the broker took all.
    ///
    /// # Errors
    ///
    /// The broker is not connected or did not take every message (some may have been taken).
    pub async fn publish_batch(&self, messages: Vec<Outgoing>) -> Result<Vec<String>, MessagingError> {
        let broker = self.broker()?;
        let messages: Vec<Outgoing> = messages.into_iter().map(prepare).collect();
        let ids = messages.iter().map(|m| m.headers.get(MESSAGE_ID).cloned().unwrap_or_default()).collect();
        let topics: Vec<String> = messages.iter().map(|m| m.topic.clone()).collect();
        let outcome = broker.publish_batch(messages).await;
        for topic in &topics {
            record_publish(topic, outcome.is_ok());
        }
        outcome.map(|()| ids)
    }

    /// Sends `message` and waits up to `timeout` for the reply, on brokers with request-reply
    /// (in-process, NATS).
    ///
    /// # Errors
    ///
    /// No reply in time, or the broker has no request-reply.
    pub async fn request(&self, message: Outgoing, timeout: Duration) -> Result<Message, MessagingError> {
        self.broker()?.request(prepare(message), timeout).await
    }

    /// Answers `request` (a message received by a handler) with `reply`.
    ///
    /// # Errors
    ///
    /// The broker did not take the reply, or has no request-reply.
    pub async fn reply(&self, request: &Message, reply: Outgoing) -> Result<(), MessagingError> {
        let mut reply = prepare(reply);
        if let Some(tp) = request.header(TRACEPARENT) {
            reply.headers.insert(TRACEPARENT.into(), tp.to_owned());
        }
        self.broker()?.reply(request, reply).await
    }

    /// The dead letters of `topic` (every topic when `None`), oldest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn dead_letters(&self, topic: Option<&str>, limit: usize) -> Result<Vec<DeadLetter>, MessagingError> {
        self.inner.dead_letters.list(topic, limit).await.map_err(|e| MessagingError::NotConnected(e.to_string()))
    }

    /// Publishes the dead letter with message id `id` again, for the group that gave up on it
    /// (the topic's other groups skip it), with its attempts counted from one; `false` when there
    /// is no such letter. The new message has an id of its own (brokers that drop duplicates by
    /// id would drop it otherwise) and names the letter in [`REDRIVEN_FROM`].
    ///
    /// # Errors
    ///
    /// The store or the publish failed (the letter is kept then).
    pub async fn redrive(&self, id: &str) -> Result<bool, MessagingError> {
        let store_err = |e: microframework_core::BoxError| MessagingError::NotConnected(e.to_string());
        let Some(letter) = self.inner.dead_letters.take(id, None).await.map_err(store_err)? else {
            return Ok(false);
        };
        let mut message = letter.message.to_outgoing();
        message.headers.remove(ATTEMPT);
        message.headers.remove(REDRIVE_FOR);
        message.headers.remove(MESSAGE_ID);
        message.headers.insert(REDRIVEN_FROM.into(), letter.message.id.clone());
        if let Some(group) = &letter.group {
            message.headers.insert(REDRIVE_FOR.into(), group.clone());
        }
        if let Err(e) = self.publish(message).await {
            self.inner.dead_letters.put(letter).await.map_err(store_err)?;
            return Err(e);
        }
        Ok(true)
    }

    /// Removes the dead letter with message id `id`; `false` when there is none.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn discard(&self, id: &str) -> Result<bool, MessagingError> {
        let taken = self.inner.dead_letters.take(id, None).await;
        taken.map(|l| l.is_some()).map_err(|e| MessagingError::NotConnected(e.to_string()))
    }

    /// Starts consuming `subscription` with `config`; the returned handle drains it.
    ///
    /// # Errors
    ///
    /// Not connected, or the broker refused the subscription.
    pub async fn subscribe(
        &self,
        subscription: Subscription,
        config: &ConsumerConfig,
    ) -> Result<ConsumerHandle, MessagingError> {
        let broker = self.broker()?;
        let group = if subscription.fanout {
            None
        } else {
            Some(subscription.group.clone().unwrap_or_else(|| self.service().to_owned()))
        };
        let spec = SubscribeSpec { topic: subscription.topic.clone(), group, prefetch: config.prefetch };
        let consumer = broker.subscribe(&spec).await?;
        let stop = CancellationToken::new();
        let group_label = spec.group.clone().unwrap_or_default();
        let runner = Runner {
            messaging: self.clone(),
            spec,
            group_label,
            handler: subscription.handler,
            config: config.clone(),
        };
        let task = tokio::spawn(runner.run(consumer, stop.clone()));
        Ok(ConsumerHandle { stop, task: Some(task) })
    }
}

/// A running subscription.
#[derive(Debug)]
pub struct ConsumerHandle {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ConsumerHandle {
    /// Drains: stops fetching, lets the handlers running now finish and settle (ack, retry or
    /// dead-letter) within `deadline`, hands the fetched but unstarted deliveries back to the
    /// broker, and closes. Handlers still running at the deadline are cancelled; the broker
    /// delivers their messages again.
    pub async fn drain(mut self, deadline: Duration) {
        self.stop.cancel();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(deadline, &mut task).await.is_err()
        {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for ConsumerHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Gives `message` an id and a trace context unless it has them.
pub(crate) fn prepare(mut message: Outgoing) -> Outgoing {
    if !message.headers.contains_key(MESSAGE_ID) {
        message.headers.insert(MESSAGE_ID.into(), uuid::Uuid::now_v7().to_string());
    }
    if !message.headers.contains_key(TRACEPARENT) {
        let cx = TraceContext::current().map_or_else(TraceContext::new_root, |cx| cx.child());
        message.headers.insert(TRACEPARENT.into(), cx.header_value());
    }
    message
}

fn record_publish(topic: &str, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    counter!(names::MESSAGING_PUBLISHED, "topic" => topic.to_owned(), "outcome" => outcome).increment(1);
}

/// One subscription's fetch loop and lanes.
struct Runner {
    messaging: Messaging,
    spec: SubscribeSpec,
    /// The `group` label of its metrics (empty for fan-out).
    group_label: String,
    handler: Handler,
    config: ConsumerConfig,
}

impl Runner {
    async fn run(self, mut consumer: Box<dyn crate::broker::Consumer>, stop: CancellationToken) {
        let runner = Arc::new(self);
        let lanes = runner.config.concurrency.max(1);
        let depth = (runner.config.prefetch as usize / lanes).max(1);
        let mut senders = Vec::with_capacity(lanes);
        let mut tasks = JoinSet::new();
        for _ in 0..lanes {
            let (tx, rx) = mpsc::channel::<Box<dyn Delivery>>(depth);
            senders.push(tx);
            tasks.spawn(runner.clone().lane(rx, stop.clone()));
        }
        let next_lane = AtomicUsize::new(0);
        let mut failures = 0u32;
        loop {
            let next = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                next = consumer.next() => next,
            };
            match next {
                Ok(Some(delivery)) => {
                    failures = 0;
                    let lane = match &delivery.message().key {
                        Some(key) => {
                            let mut h = DefaultHasher::new();
                            key.hash(&mut h);
                            (h.finish() % lanes as u64) as usize
                        }
                        None => next_lane.fetch_add(1, Ordering::Relaxed) % lanes,
                    };
                    let send = tokio::select! {
                        biased;
                        () = stop.cancelled() => break,
                        sent = senders[lane].send(delivery) => sent,
                    };
                    if send.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failures += 1;
                    counter!(names::MESSAGING_ERRORS, "operation" => "fetch").increment(1);
                    tracing::warn!(topic = %runner.spec.topic, error = %e, "fetching messages failed; retrying");
                    let wait = Duration::from_millis(100u64 << failures.min(6));
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        consumer.close().await;
        drop(senders);
        while tasks.join_next().await.is_some() {}
    }

    async fn lane(self: Arc<Self>, mut rx: mpsc::Receiver<Box<dyn Delivery>>, stop: CancellationToken) {
        loop {
            let delivery = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                d = rx.recv() => d,
            };
            let Some(delivery) = delivery else { break };
            // Once started, a handler runs to completion (or to the drain deadline).
            self.handle(delivery).await;
        }
        // Fetched but not started: back to the broker, which delivers them again.
        rx.close();
        while rx.try_recv().is_ok() {}
    }

    async fn handle(&self, delivery: Box<dyn Delivery>) {
        let message = delivery.message().clone();
        let (topic, group) = (&self.spec.topic, &self.group_label);
        let labels = [("topic", topic.clone()), ("group", group.clone())];
        if let Some(target) = message.header(REDRIVE_FOR)
            && self.spec.group.as_deref() != Some(target)
        {
            // A redriven dead letter of another group of this topic: this one handled it already.
            settle(delivery.ack().await, &message, "ack");
            self.count_consumed("skipped");
            return;
        }
        let span = tracing::info_span!(
            "message",
            topic = %message.topic,
            group = %group,
            message_id = %message.id,
            attempt = message.attempt,
            trace_id = tracing::field::Empty,
        );
        let cx = message
            .header(TRACEPARENT)
            .and_then(TraceContext::parse)
            .map_or_else(TraceContext::new_root, |cx| cx.child());
        cx.attach_to(&span);

        let in_flight = gauge!(names::MESSAGING_IN_FLIGHT, &labels);
        in_flight.increment(1.0);
        let started = Instant::now();
        let run = AssertUnwindSafe((self.handler)(message.clone())).catch_unwind();
        let outcome = match tokio::time::timeout(self.config.handler_timeout, run).instrument(span.clone()).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(HandlerError::retry(format!("the handler panicked: {}", panic_text(&panic)))),
            Err(_) => Err(HandlerError::retry(format!(
                "the handler did not finish within consumer.handler_timeout ({:?})",
                self.config.handler_timeout
            ))),
        };
        histogram!(names::MESSAGING_HANDLER_DURATION, &labels).record(started.elapsed().as_secs_f64());
        in_flight.decrement(1.0);

        // Settling logs inside the message's span (instrumented: a span entered across an
        // await would stay entered on the thread while the task sleeps).
        let outcome_label = async { match outcome {
            Ok(()) => {
                settle(delivery.ack().await, &message, "ack");
                "ack"
            }
            Err(e) if e.is_permanent() || message.attempt >= self.config.max_attempts => {
                let reason = if e.is_permanent() { "cannot be handled" } else { "failed on its last attempt" };
                tracing::error!(error = %e, attempts = message.attempt, "message {reason}: dead-lettered");
                let letter = DeadLetter {
                    message: message.clone(),
                    group: self.spec.group.clone(),
                    error: e.to_string(),
                    attempts: message.attempt,
                    failed_at: SystemTime::now(),
                };
                match self.messaging.inner.dead_letters.put(letter).await {
                    Ok(()) => {
                        settle(delivery.ack().await, &message, "ack");
                        "dead_letter"
                    }
                    Err(store) => {
                        tracing::error!(error = %store, "the dead-letter store failed; the message stays with the broker");
                        settle(delivery.nack(self.delay(message.attempt)).await, &message, "nack");
                        "retry"
                    }
                }
            }
            Err(e) => {
                let delay = self.delay(message.attempt);
                tracing::warn!(error = %e, attempt = message.attempt, retry_in = ?delay, "handler failed; the message will be delivered again");
                settle(delivery.nack(delay).await, &message, "nack");
                "retry"
            }
        } }
        .instrument(span)
        .await;
        self.count_consumed(outcome_label);
    }

    /// Counts a settled delivery in `messaging_consumed_total`.
    fn count_consumed(&self, outcome: &'static str) {
        let labels =
            [("topic", self.spec.topic.clone()), ("group", self.group_label.clone()), ("outcome", outcome.to_owned())];
        counter!(names::MESSAGING_CONSUMED, &labels).increment(1);
    }

    /// The backoff after `attempt` failed, with ±20 % jitter.
    fn delay(&self, attempt: u32) -> Duration {
        let base = self.config.backoff(attempt);
        base.mul_f64(rand::rng().random_range(0.8..=1.2))
    }
}

fn settle(outcome: Result<(), MessagingError>, message: &Message, what: &'static str) {
    if let Err(e) = outcome {
        counter!(names::MESSAGING_ERRORS, "operation" => what).increment(1);
        tracing::warn!(topic = %message.topic, message_id = %message.id, error = %e, "{what} failed; the broker will deliver the message again");
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

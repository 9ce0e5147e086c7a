//! The in-process broker: the embedded default (`messaging.provider: memory`).
//!
//! Topics, consumer groups and fan-out subscribers live in the process. A group keeps its queue
//! when its consumers go away (as a durable consumer would), so messages wait for the next one;
//! messages published to a topic no group has subscribed to yet reach only its fan-out
//! subscribers. Nothing survives the process: it is for development, tests and single-process
//! services. Request-reply is supported.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, Consumer, Delivery, MessagingError, REPLY_TO, SubscribeSpec};
use crate::message::{Message, Outgoing};

/// The in-process broker. Clones share the same topics.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shared {
    topics: Mutex<HashMap<String, Topic>>,
    replies: Mutex<HashMap<String, oneshot::Sender<Message>>>,
    closed: AtomicBool,
    stop: CancellationToken,
}

#[derive(Default)]
struct Topic {
    groups: HashMap<String, Arc<Queue>>,
    fanout: Vec<Weak<Queue>>,
}

#[derive(Default)]
struct Queue {
    items: Mutex<VecDeque<Message>>,
    notify: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (single pushes and pops).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Queue {
    fn push_back(&self, message: Message) {
        lock(&self.items).push_back(message);
        self.notify.notify_one();
    }

    fn push_front(&self, message: Message) {
        lock(&self.items).push_front(message);
        self.notify.notify_one();
    }
}

impl MemoryBroker {
    /// A broker with no topics.
    pub fn new() -> Self {
        Self::default()
    }

    fn closed(&self) -> Result<(), MessagingError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(MessagingError::NotConnected("the in-process broker is closed".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn provider(&self) -> &'static str {
        "memory"
    }

    async fn publish(&self, message: Outgoing) -> Result<(), MessagingError> {
        self.closed()?;
        let mut topics = lock(&self.shared.topics);
        let Some(topic) = topics.get_mut(&message.topic) else { return Ok(()) };
        topic.fanout.retain(|q| q.strong_count() > 0);
        let message = Message::from_outgoing(message, 1);
        for queue in topic.groups.values().cloned().chain(topic.fanout.iter().filter_map(Weak::upgrade)) {
            queue.push_back(message.clone());
        }
        Ok(())
    }

    async fn subscribe(&self, spec: &SubscribeSpec) -> Result<Box<dyn Consumer>, MessagingError> {
        self.closed()?;
        let mut topics = lock(&self.shared.topics);
        let topic = topics.entry(spec.topic.clone()).or_default();
        let queue = match &spec.group {
            Some(group) => topic.groups.entry(group.clone()).or_default().clone(),
            None => {
                let queue = Arc::new(Queue::default());
                topic.fanout.push(Arc::downgrade(&queue));
                queue
            }
        };
        Ok(Box::new(MemoryConsumer { queue, stop: self.shared.stop.child_token() }))
    }

    async fn request(&self, message: Outgoing, timeout: Duration) -> Result<Message, MessagingError> {
        let correlation = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.replies).insert(correlation.clone(), tx);
        let topic = message.topic.clone();
        let outcome = async {
            self.publish(message.header(REPLY_TO, correlation.clone())).await?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(reply)) => Ok(reply),
                _ => Err(MessagingError::Timeout { topic, timeout }),
            }
        }
        .await;
        lock(&self.shared.replies).remove(&correlation);
        outcome
    }

    async fn reply(&self, request: &Message, reply: Outgoing) -> Result<(), MessagingError> {
        let Some(to) = request.header(REPLY_TO) else {
            return Err(MessagingError::Publish { topic: reply.topic, reason: "the message is not a request".into() });
        };
        // A requester that gave up is gone: the reply has nobody to go to, as on any broker.
        if let Some(tx) = lock(&self.shared.replies).remove(to) {
            let _ = tx.send(Message::from_outgoing(reply, 1));
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), MessagingError> {
        self.closed()
    }

    async fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.stop.cancel();
    }
}

struct MemoryConsumer {
    queue: Arc<Queue>,
    /// Cancelled by [`Consumer::close`] or when the broker closes.
    stop: CancellationToken,
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn next(&mut self) -> Result<Option<Box<dyn Delivery>>, MessagingError> {
        loop {
            let notified = self.queue.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.stop.is_cancelled() {
                return Ok(None);
            }
            if let Some(message) = lock(&self.queue.items).pop_front() {
                return Ok(Some(Box::new(MemoryDelivery { message, queue: self.queue.clone(), settled: false })));
            }
            tokio::select! {
                () = &mut notified => {}
                () = self.stop.cancelled() => {
                    // Pass on a wake-up this consumer may have taken from the group's others.
                    self.queue.notify.notify_one();
                    return Ok(None);
                }
            }
        }
    }

    async fn close(&mut self) {
        self.stop.cancel();
    }
}

struct MemoryDelivery {
    message: Message,
    queue: Arc<Queue>,
    settled: bool,
}

#[async_trait]
impl Delivery for MemoryDelivery {
    fn message(&self) -> &Message {
        &self.message
    }

    async fn ack(mut self: Box<Self>) -> Result<(), MessagingError> {
        self.settled = true;
        Ok(())
    }

    async fn nack(mut self: Box<Self>, delay: Duration) -> Result<(), MessagingError> {
        self.settled = true;
        let mut message = self.message.clone();
        message.attempt += 1;
        let queue = self.queue.clone();
        if delay.is_zero() {
            queue.push_back(message);
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                queue.push_back(message);
            });
        }
        Ok(())
    }
}

impl Drop for MemoryDelivery {
    fn drop(&mut self) {
        if !self.settled {
            // Unsettled: delivered again, first in line, as a broker does when a consumer is lost.
            let mut message = self.message.clone();
            message.attempt += 1;
            self.queue.push_front(message);
        }
    }
}

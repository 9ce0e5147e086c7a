//! Subscriptions: a topic, a consumer group and a handler.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use microframework_core::BoxError;
use serde::de::DeserializeOwned;

use crate::message::Message;

/// Why a handler did not handle a message.
#[derive(Debug)]
pub struct HandlerError {
    error: BoxError,
    permanent: bool,
}

impl HandlerError {
    /// A failure that another attempt may fix (a dependency down): the message is delivered
    /// again after a backoff, up to `consumer.max_attempts` deliveries.
    pub fn retry(error: impl Into<BoxError>) -> Self {
        Self { error: error.into(), permanent: false }
    }

    /// A failure no retry can fix (a malformed payload): the message goes to the dead letters
    /// at once.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self { error: error.into(), permanent: true }
    }

    /// Whether it is permanent.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The error.
    pub fn error(&self) -> &BoxError {
        &self.error
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<E: Into<BoxError>> From<E> for HandlerError {
    /// Any error is retried (see [`HandlerError::retry`]); `?` in a handler gives this.
    fn from(error: E) -> Self {
        Self::retry(error)
    }
}

/// What a handler returns.
pub type HandlerResult = Result<(), HandlerError>;

pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;
pub(crate) type Handler = Arc<dyn Fn(Message) -> HandlerFuture + Send + Sync>;

/// A subscription: what [`Messaging::subscribe`](crate::Messaging::subscribe) and
/// [`MessagingPlugin::subscribe`](crate::MessagingPlugin::subscribe) take.
///
/// ```
/// use microframework_messaging::{HandlerError, Subscription};
/// #[derive(serde::Deserialize)]
/// struct UserCreated { id: String }
/// let sub = Subscription::json("users.created", |event: UserCreated, _msg| async move {
///     tracing::info!(user = %event.id, "welcome mail queued");
///     Ok::<_, HandlerError>(())
/// })
/// .group("mailer");
/// ```
#[derive(Clone)]
pub struct Subscription {
    pub(crate) topic: String,
    pub(crate) group: Option<String>,
    pub(crate) fanout: bool,
    pub(crate) handler: Handler,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").field("topic", &self.topic).field("group", &self.group).finish()
    }
}

impl Subscription {
    /// Calls `handler` with every message of `topic`. The message is acknowledged when the
    /// handler returns `Ok`, delivered again after a backoff when it returns `Err` (or panics, or
    /// runs past `consumer.handler_timeout`), and dead-lettered after `consumer.max_attempts`.
    ///
    /// The consumer group is the service's name unless [`group`](Self::group) or
    /// [`fanout`](Self::fanout) says otherwise: the replicas of a service share the messages.
    pub fn new<F, Fut>(topic: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        Self {
            topic: topic.into(),
            group: None,
            fanout: false,
            handler: Arc::new(move |message| Box::pin(handler(message))),
        }
    }

    /// Like [`new`](Self::new), with the payload deserialised from JSON into `T`. A payload that
    /// does not deserialise goes to the dead letters at once: no retry can fix it.
    pub fn json<T, F, Fut>(topic: impl Into<String>, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T, Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let handler = Arc::new(handler);
        Self::new(topic, move |message: Message| {
            let handler = handler.clone();
            async move {
                let value: T = serde_json::from_slice(&message.payload)
                    .map_err(|e| HandlerError::permanent(format!("the payload is not the expected JSON: {e}")))?;
                handler(value, message).await
            }
        })
    }

    /// Sets the consumer group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self.fanout = false;
        self
    }

    /// Every replica gets every message published while it runs (no group, nothing kept while it
    /// is away): for fan-out such as pushing changes to the clients connected to each replica.
    pub fn fanout(mut self) -> Self {
        self.group = None;
        self.fanout = true;
        self
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

//! Dead letters: messages whose handler failed `consumer.max_attempts` times, or that could never
//! be handled (a payload that does not deserialise). They are kept by the framework, not by the
//! broker, so that every provider has the same dead-letter queue: listed with
//! [`Messaging::dead_letters`](crate::Messaging::dead_letters), sent again with
//! [`Messaging::redrive`](crate::Messaging::redrive), removed with
//! [`Messaging::discard`](crate::Messaging::discard).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use microframework_core::BoxError;

use crate::message::Message;

/// A message that will not be handled without help.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The message, as last delivered.
    pub message: Message,
    /// The consumer group that gave up on it (`None`: a fan-out subscription).
    pub group: Option<String>,
    /// The last error.
    pub error: String,
    /// Deliveries made.
    pub attempts: u32,
    /// When it was given up.
    pub failed_at: SystemTime,
}

impl DeadLetter {
    /// Its id: the message's id.
    pub fn id(&self) -> &str {
        &self.message.id
    }
}

/// Where dead letters are kept.
#[async_trait]
pub trait DeadLetterStore: Send + Sync + 'static {
    /// Keeps `letter`. An error leaves the message with the broker, which delivers it again.
    async fn put(&self, letter: DeadLetter) -> Result<(), BoxError>;

    /// The letters, oldest first, of `topic` (all topics when `None`), at most `limit`.
    async fn list(&self, topic: Option<&str>, limit: usize) -> Result<Vec<DeadLetter>, BoxError>;

    /// Removes and returns the letter with message id `id` (for `group`, when given).
    async fn take(&self, id: &str, group: Option<&str>) -> Result<Option<DeadLetter>, BoxError>;
}

/// Dead letters in the process's memory (the default), at most `max_kept`: beyond it the oldest
/// are dropped and logged.
#[derive(Debug)]
pub struct MemoryDeadLetters {
    letters: Mutex<VecDeque<DeadLetter>>,
    max_kept: usize,
}

impl MemoryDeadLetters {
    /// A store keeping at most `max_kept` letters.
    pub fn new(max_kept: usize) -> Self {
        Self { letters: Mutex::new(VecDeque::new()), max_kept: max_kept.max(1) }
    }

    fn letters(&self) -> std::sync::MutexGuard<'_, VecDeque<DeadLetter>> {
        self.letters.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl DeadLetterStore for MemoryDeadLetters {
    async fn put(&self, letter: DeadLetter) -> Result<(), BoxError> {
        let mut letters = self.letters();
        while letters.len() >= self.max_kept {
            if let Some(old) = letters.pop_front() {
                tracing::error!(
                    topic = %old.message.topic,
                    message_id = %old.message.id,
                    error = %old.error,
                    "dead letter dropped: the in-process store is full (messaging.dead_letter.max_kept)"
                );
            }
        }
        letters.push_back(letter);
        Ok(())
    }

    async fn list(&self, topic: Option<&str>, limit: usize) -> Result<Vec<DeadLetter>, BoxError> {
        Ok(self.letters().iter().filter(|l| topic.is_none_or(|t| l.message.topic == t)).take(limit).cloned().collect())
    }

    async fn take(&self, id: &str, group: Option<&str>) -> Result<Option<DeadLetter>, BoxError> {
        let mut letters = self.letters();
        let found =
            letters.iter().position(|l| l.message.id == id && group.is_none_or(|g| l.group.as_deref() == Some(g)));
        Ok(found.and_then(|i| letters.remove(i)))
    }
}

//! Messaging for MicroFramework services: one publish/subscribe API over several brokers.
//!
//! - [`Messaging`]: publish (payload, headers, ordering key), batch publish, request-reply where
//!   the broker has it, and the dead letters (list, redrive, discard).
//! - [`Subscription`]: a topic, a consumer group and a handler. `Ok` acknowledges; `Err` delivers
//!   the message again after an exponential backoff; after `consumer.max_attempts` deliveries (or
//!   at once for [`HandlerError::permanent`]) the message becomes a [`DeadLetter`], kept by the
//!   framework the same way for every broker.
//! - Every message carries an id (`mf-message-id`, the same on every delivery) and a W3C
//!   `traceparent`: the publishing request's trace continues in the consumer's logs.
//! - Metrics per topic (published, consumed by outcome, handler latency, in flight, errors).
//! - [`MessagingPlugin`]: the `messaging` config section, connection at start-up (or in the
//!   background, with readiness failing until the broker answers), and draining on shutdown.
//!
//! - `outbox` (features `sqlite`, `postgres`, `mysql`): messages written in the SQL transaction
//!   of the data they are about, relayed after the commit.
//!
//! Providers implement [`Broker`]: `memory` (in-process, the default) and `nats` (JetStream,
//! feature `nats`). See `docs/messaging.md`.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod broker;
mod config;
mod dead_letter;
mod memory;
mod message;
mod messaging;
#[cfg(feature = "nats")]
mod nats;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub mod outbox;
mod plugin;
mod subscription;

use std::sync::Arc;

pub use broker::{Broker, Consumer, Delivery, MessagingError, SubscribeSpec};
pub use config::{ConsumerConfig, DeadLetterConfig, MessagingConfig, NatsConfig, OutboxConfig, PROVIDERS};
pub use dead_letter::{DeadLetter, DeadLetterStore, MemoryDeadLetters};
pub use memory::MemoryBroker;
pub use message::{ATTEMPT, Headers, MESSAGE_ID, Message, Outgoing};
pub use messaging::{ConsumerHandle, Messaging, REDRIVE_FOR, REDRIVEN_FROM};
#[cfg(feature = "nats")]
pub use nats::NatsBroker;
pub use plugin::MessagingPlugin;
pub use subscription::{HandlerError, HandlerResult, Subscription};

/// Whether `provider` is compiled into this build.
pub(crate) fn provider_compiled(provider: &str) -> bool {
    provider == "memory" || (cfg!(feature = "nats") && provider == "nats")
}

/// The broker `config` names, for messages (URL without its password).
pub(crate) fn describe(config: &MessagingConfig) -> String {
    match &config.url {
        Some(url) => format!("{} at {}", config.provider, redact(url)),
        None => config.provider.clone(),
    }
}

/// `url` without the password of its user info.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// Connects to the broker `config` names, within `connect_timeout`, as `service` (the name the
/// broker shows for the connection).
///
/// # Errors
///
/// The provider is not compiled in, or the broker cannot be reached.
pub async fn connect(config: &MessagingConfig, service: &str) -> Result<Arc<dyn Broker>, MessagingError> {
    let unreachable = |reason: String| MessagingError::Unreachable {
        provider: PROVIDERS.iter().map(|(p, _)| *p).find(|p| *p == config.provider).unwrap_or("unknown"),
        url: config.url.as_deref().map(redact).unwrap_or_default(),
        reason,
    };
    match config.provider.as_str() {
        "memory" => {
            let _ = service;
            Ok(Arc::new(MemoryBroker::new()))
        }
        #[cfg(feature = "nats")]
        "nats" => nats::connect(config, service).await,
        other => Err(unreachable(format!("the `{other}` provider is not compiled into this service"))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_lose_their_password() {
        assert_eq!(super::redact("nats://user:secret@host:4222/x"), "nats://user:***@host:4222/x");
        assert_eq!(super::redact("nats://host:4222"), "nats://host:4222");
        assert_eq!(super::redact("amqp://guest:p@ss@host/"), "amqp://guest:***@host/");
    }
}

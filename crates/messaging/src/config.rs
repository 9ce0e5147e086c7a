//! The `messaging` configuration section.

use std::time::Duration;

use microframework_core::{Validate, Validation};
use serde::Deserialize;

/// Every provider name `messaging.provider` accepts, with the facade feature that compiles it.
pub const PROVIDERS: &[(&str, &str)] = &[("memory", "messaging"), ("nats", "messaging-nats")];

/// The `messaging` section.
///
/// ```yaml
/// messaging:
///   provider: nats                 # memory (default) | nats
///   url: nats://127.0.0.1:4222
///   required: true                 # exit at start-up when the broker is unreachable
///   consumer:
///     concurrency: 4               # lanes per subscription; one key stays in one lane
///     max_attempts: 5              # then the message goes to the dead letters
///     initial_backoff: 1s
///     max_backoff: 1m
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MessagingConfig {
    /// The broker: `memory` (in-process, the default) or `nats` (JetStream).
    pub provider: String,
    /// The broker's URL; required for every provider but `memory`.
    pub url: Option<String>,
    /// Whether start-up fails when the broker cannot be reached. When `false` (the default) the
    /// service starts, readiness fails, and it keeps connecting in the background.
    pub required: bool,
    /// How long one connection attempt may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long a readiness check may wait for the broker.
    #[serde(with = "humantime_serde")]
    pub health_timeout: Duration,
    /// Consumer settings, for every subscription of the service.
    pub consumer: ConsumerConfig,
    /// Dead letters.
    pub dead_letter: DeadLetterConfig,
    /// NATS settings (`provider: nats`).
    pub nats: NatsConfig,
    /// The transactional outbox's relay (with `MessagingPlugin::outbox`).
    pub outbox: OutboxConfig,
}

/// The outbox relay (`messaging.outbox`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// How often the relay looks for committed messages when the last round found none.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self { poll_interval: Duration::from_millis(200) }
    }
}

impl Default for MessagingConfig {
    fn default() -> Self {
        Self {
            provider: "memory".into(),
            url: None,
            required: false,
            connect_timeout: Duration::from_secs(5),
            health_timeout: Duration::from_secs(2),
            consumer: ConsumerConfig::default(),
            dead_letter: DeadLetterConfig::default(),
            nats: NatsConfig::default(),
            outbox: OutboxConfig::default(),
        }
    }
}

/// How subscriptions consume (`messaging.consumer`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Handlers running at once per subscription. Messages with the same key always go to the
    /// same lane, so they are handled one at a time, in order.
    pub concurrency: usize,
    /// Deliveries fetched ahead of the handlers (the broker's prefetch / max unacknowledged).
    pub prefetch: u32,
    /// Deliveries of one message before it goes to the dead letters (1 = no retry).
    pub max_attempts: u32,
    /// The delay before the second delivery; it doubles (`backoff_multiplier`) up to `max_backoff`,
    /// with ±20 % jitter.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// The longest delay between deliveries.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// The factor between consecutive delays.
    pub backoff_multiplier: f64,
    /// How long one handler may run before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub handler_timeout: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            prefetch: 64,
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            backoff_multiplier: 2.0,
            handler_timeout: Duration::from_secs(30),
        }
    }
}

impl ConsumerConfig {
    /// The delay before delivery `attempt + 1`, after `attempt` failed, without jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.backoff_multiplier.powi(attempt.saturating_sub(1).min(64) as i32);
        let secs = (self.initial_backoff.as_secs_f64() * exp).min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// Dead letters (`messaging.dead_letter`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// How many dead letters the in-process store keeps; beyond it the oldest are dropped (and
    /// logged). A database-backed store keeps every one.
    pub max_kept: usize,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        Self { max_kept: 10_000 }
    }
}

/// NATS JetStream settings (`messaging.nats`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// The stream that holds the service's topics (subjects); created when missing.
    /// Empty: `MF_<SERVICE>` in upper case.
    pub stream: String,
    /// The subjects the stream captures. Empty: every topic the service subscribes to or
    /// publishes, which is `>` scoped by nothing; set it when other services share the server.
    pub subjects: Vec<String>,
    /// How long the stream keeps messages.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// How long a delivery may stay unacknowledged before the server delivers it again (a
    /// consumer that died mid-message, or fetched messages a drain handed back). Longer than
    /// `consumer.handler_timeout`.
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            stream: String::new(),
            subjects: Vec::new(),
            max_age: Duration::from_secs(7 * 24 * 3600),
            ack_wait: Duration::from_secs(60),
        }
    }
}

const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

impl Validate for MessagingConfig {
    fn validate(&self, v: &mut Validation) {
        let names: Vec<&str> = PROVIDERS.iter().map(|(p, _)| *p).collect();
        match PROVIDERS.iter().find(|(p, _)| *p == self.provider) {
            None => v.error("provider", format!("one of {}; found `{}`", names.join(", "), self.provider)),
            Some((p, feature)) if !crate::provider_compiled(p) => v.error(
                "provider",
                format!(
                    "a provider compiled into this service; `{p}` needs the `{feature}` feature of the microframework \
                     crate (Cargo.toml), or `microframework add messaging --provider {p}`"
                ),
            ),
            Some(_) => {}
        }
        if self.provider != "memory" {
            match &self.url {
                None => v.error("url", format!("the {} server's URL, such as nats://127.0.0.1:4222", self.provider)),
                Some(url) if url.trim().is_empty() => v.error("url", "a URL; found an empty string"),
                Some(_) => {}
            }
        }
        for (key, value) in [
            ("connect_timeout", self.connect_timeout),
            ("health_timeout", self.health_timeout),
            ("consumer.initial_backoff", self.consumer.initial_backoff),
            ("consumer.max_backoff", self.consumer.max_backoff),
            ("consumer.handler_timeout", self.consumer.handler_timeout),
            ("nats.max_age", self.nats.max_age),
            ("nats.ack_wait", self.nats.ack_wait),
            ("outbox.poll_interval", self.outbox.poll_interval),
        ] {
            v.check(!value.is_zero(), key, "a duration above zero, such as 5s");
        }
        for (key, value) in [("connect_timeout", self.connect_timeout), ("health_timeout", self.health_timeout)] {
            v.check(value <= Duration::from_secs(3600), key, "a duration of at most 1h");
        }
        v.check(
            self.consumer.initial_backoff <= self.consumer.max_backoff,
            "consumer.initial_backoff",
            "a duration not above `consumer.max_backoff`",
        );
        v.check(self.consumer.max_backoff <= MAX_DURATION, "consumer.max_backoff", "a duration of at most 24h");
        v.check((1..=1024).contains(&self.consumer.concurrency), "consumer.concurrency", "a number from 1 to 1024");
        v.check(self.consumer.prefetch >= 1, "consumer.prefetch", "a number of at least 1");
        v.check((1..=1000).contains(&self.consumer.max_attempts), "consumer.max_attempts", "a number from 1 to 1000");
        v.check(
            self.consumer.backoff_multiplier.is_finite() && (1.0..=10.0).contains(&self.consumer.backoff_multiplier),
            "consumer.backoff_multiplier",
            "a number from 1 to 10",
        );
        if self.provider == "nats" {
            v.check(
                self.nats.ack_wait > self.consumer.handler_timeout,
                "nats.ack_wait",
                format!(
                    "a duration above `consumer.handler_timeout` ({:?}), or a slow handler's message is delivered twice",
                    self.consumer.handler_timeout
                ),
            );
        }
        v.check(self.dead_letter.max_kept >= 1, "dead_letter.max_kept", "a number of at least 1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stops_at_the_maximum() {
        let c = ConsumerConfig::default();
        assert_eq!(c.backoff(1), Duration::from_secs(1));
        assert_eq!(c.backoff(2), Duration::from_secs(2));
        assert_eq!(c.backoff(4), Duration::from_secs(8));
        assert_eq!(c.backoff(10), Duration::from_secs(60));
        assert_eq!(c.backoff(u32::MAX), Duration::from_secs(60));
    }
}

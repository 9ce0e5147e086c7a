//! The service state machine and shutdown settings.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::{Validate, Validation};

/// Where the service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Components are starting; readiness fails.
    Starting,
    /// Serving; readiness reflects the checks.
    Ready,
    /// Shutdown requested: readiness fails, in-flight work finishes.
    Draining,
    /// Everything has stopped.
    Stopped,
}

impl ServiceState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Starting,
            1 => Self::Ready,
            2 => Self::Draining,
            _ => Self::Stopped,
        }
    }

    /// The state name (`starting`, `ready`, `draining`, `stopped`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Draining => "draining",
            Self::Stopped => "stopped",
        }
    }
}

/// Shared state of the service and the token that triggers shutdown.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    state: Arc<AtomicU8>,
    shutdown: CancellationToken,
    closing: CancellationToken,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// A new lifecycle in [`ServiceState::Starting`].
    pub fn new() -> Self {
        Self {
            state: Arc::new(AtomicU8::new(0)),
            shutdown: CancellationToken::new(),
            closing: CancellationToken::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> ServiceState {
        ServiceState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Moves to `state`.
    pub fn set_state(&self, state: ServiceState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// Requests shutdown (as SIGTERM does): the state becomes draining.
    pub fn shutdown(&self) {
        if matches!(self.state(), ServiceState::Starting | ServiceState::Ready) {
            self.set_state(ServiceState::Draining);
        }
        self.shutdown.cancel();
    }

    /// A token cancelled when shutdown is requested; long-running tasks select on it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Resolves when shutdown is requested.
    pub async fn shutdown_requested(&self) {
        self.shutdown.cancelled().await;
    }

    /// Ends the drain: the listeners stop accepting and long-lived connections (WebSocket peers,
    /// GraphQL subscriptions) are closed. Requests shutdown too if it was not. `Service` calls
    /// it `shutdown.drain_delay` after shutdown is requested, so that load balancers have
    /// stopped routing here and reconnecting clients reach another instance; code that runs its
    /// own listeners calls it when they stop.
    pub fn stop_accepting(&self) {
        self.shutdown();
        self.closing.cancel();
    }

    /// A token cancelled by [`stop_accepting`](Self::stop_accepting), at the end of the drain
    /// delay; connections that outlive requests (WebSocket, subscriptions) close on it.
    pub fn closing_token(&self) -> CancellationToken {
        self.closing.clone()
    }
}

/// The `shutdown` configuration section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// After the signal, how long readiness reports 503 while the listener still serves, so that
    /// load balancers stop routing here before connections close (default `0s`; use a few
    /// seconds behind a Kubernetes Service).
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// How long in-flight requests may take to finish once the listener stops (default `30s`).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long each component's stop hook may take (default `10s`).
    #[serde(with = "humantime_serde")]
    pub component_timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_delay: Duration::ZERO,
            timeout: Duration::from_secs(30),
            component_timeout: Duration::from_secs(10),
        }
    }
}

impl Validate for ShutdownConfig {
    fn validate(&self, v: &mut Validation) {
        v.check(self.timeout > Duration::ZERO, "timeout", "a duration greater than 0, such as 30s");
        v.check(self.drain_delay <= Duration::from_secs(300), "drain_delay", "a duration of at most 300s");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_then_stop_accepting() {
        let lc = Lifecycle::new();
        lc.set_state(ServiceState::Ready);
        let (shutdown, closing) = (lc.shutdown_token(), lc.closing_token());
        lc.shutdown();
        assert_eq!(lc.state(), ServiceState::Draining);
        assert!(shutdown.is_cancelled());
        assert!(!closing.is_cancelled(), "connections stay open through the drain delay");
        lc.stop_accepting();
        assert!(closing.is_cancelled());
    }

    #[test]
    fn stop_accepting_implies_shutdown() {
        let lc = Lifecycle::new();
        lc.set_state(ServiceState::Ready);
        lc.stop_accepting();
        assert!(lc.shutdown_token().is_cancelled());
        assert!(lc.closing_token().is_cancelled());
        assert_eq!(lc.state(), ServiceState::Draining);
    }
}

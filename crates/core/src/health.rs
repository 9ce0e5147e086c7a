//! Health checks: liveness and readiness with per-check status and latency.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::lifecycle::{Lifecycle, ServiceState};

type CheckFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Whether a check belongs to liveness (is the process healthy?) or readiness (can it serve?).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Failing liveness makes the orchestrator restart the process: use sparingly.
    Liveness,
    /// Failing readiness takes the instance out of load balancing (database down, warming up).
    Readiness,
}

/// A named check.
#[derive(Clone)]
pub struct HealthCheck {
    name: String,
    kind: CheckKind,
    timeout: Duration,
    /// Whether a failure fails the report (see [`HealthCheck::non_critical`]).
    critical: bool,
    check: CheckFn,
}

impl std::fmt::Debug for HealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthCheck").field("name", &self.name).field("kind", &self.kind).finish()
    }
}

impl HealthCheck {
    /// A readiness check named `name`, failing after `timeout` (default 2 s, see [`HealthCheck::timeout`]).
    pub fn readiness<F, Fut>(name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self::new(name, CheckKind::Readiness, check)
    }

    /// A liveness check.
    pub fn liveness<F, Fut>(name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self::new(name, CheckKind::Liveness, check)
    }

    fn new<F, Fut>(name: impl Into<String>, kind: CheckKind, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name: name.into(),
            kind,
            timeout: Duration::from_secs(2),
            critical: true,
            check: Arc::new(move || Box::pin(check())),
        }
    }

    /// Makes the check informative: when it fails it reports [`CheckStatus::Degraded`] with its
    /// error, and the report stays up. For dependencies the service works without (a cache).
    pub fn non_critical(mut self) -> Self {
        self.critical = false;
        self
    }

    /// Sets how long the check may take before it counts as failed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The check's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self) -> CheckResult {
        let start = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, (self.check)()).await;
        let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
        let failed = if self.critical { CheckStatus::Down } else { CheckStatus::Degraded };
        let (status, error) = match outcome {
            Ok(Ok(())) => (CheckStatus::Up, None),
            Ok(Err(e)) => (failed, Some(e)),
            Err(_) => (failed, Some(format!("timed out after {:?}", self.timeout))),
        };
        CheckResult { name: self.name.clone(), status, latency_ms: (latency_ms * 1000.0).round() / 1000.0, error }
    }
}

/// Up, down, or (for a non-critical check) degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Healthy.
    Up,
    /// Unhealthy.
    Down,
    /// A non-critical check failed ([`HealthCheck::non_critical`]): the service works without
    /// it, worse (a cache outage: every read goes to the database). Does not fail the report.
    Degraded,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Check name.
    pub name: String,
    /// Up or down.
    pub status: CheckStatus,
    /// How long the check took, in milliseconds.
    pub latency_ms: f64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A health report: overall status, service state and each check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Up only if the state allows it and every check is up.
    pub status: CheckStatus,
    /// The service state.
    pub state: ServiceState,
    /// Every check that ran.
    pub checks: Vec<CheckResult>,
}

impl HealthReport {
    /// Whether the report is up.
    pub fn is_up(&self) -> bool {
        self.status == CheckStatus::Up
    }
}

/// The registry of health checks. Cloning is cheap.
#[derive(Clone, Default, Debug)]
pub struct HealthRegistry {
    checks: Arc<RwLock<Vec<HealthCheck>>>,
}

impl HealthRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a check, replacing any check of the same name and kind.
    pub fn register(&self, check: HealthCheck) {
        let mut checks = self.checks.write().unwrap_or_else(|p| p.into_inner());
        checks.retain(|c| !(c.name == check.name && c.kind == check.kind));
        checks.push(check);
    }

    /// Removes the checks named `name`.
    pub fn deregister(&self, name: &str) {
        self.checks.write().unwrap_or_else(|p| p.into_inner()).retain(|c| c.name != name);
    }

    fn of_kind(&self, kind: CheckKind) -> Vec<HealthCheck> {
        self.checks.read().unwrap_or_else(|p| p.into_inner()).iter().filter(|c| c.kind == kind).cloned().collect()
    }

    async fn run_all(checks: Vec<HealthCheck>) -> Vec<CheckResult> {
        futures_util::future::join_all(checks.iter().map(HealthCheck::run)).await
    }

    /// Runs the liveness checks. Liveness is independent of the service state, so a draining
    /// service is still alive.
    pub async fn liveness(&self, lifecycle: &Lifecycle) -> HealthReport {
        let checks = Self::run_all(self.of_kind(CheckKind::Liveness)).await;
        let up = checks.iter().all(|c| c.status != CheckStatus::Down);
        HealthReport { status: if up { CheckStatus::Up } else { CheckStatus::Down }, state: lifecycle.state(), checks }
    }

    /// Runs the readiness checks concurrently. The report is down unless the state is
    /// [`ServiceState::Ready`] and no check is down (degraded ones are reported, and allowed).
    pub async fn readiness(&self, lifecycle: &Lifecycle) -> HealthReport {
        let checks = Self::run_all(self.of_kind(CheckKind::Readiness)).await;
        let state = lifecycle.state();
        let up = state == ServiceState::Ready && checks.iter().all(|c| c.status != CheckStatus::Down);
        HealthReport { status: if up { CheckStatus::Up } else { CheckStatus::Down }, state, checks }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_requires_ready_state_and_all_checks() {
        let lc = Lifecycle::new();
        let reg = HealthRegistry::new();
        reg.register(HealthCheck::readiness("ok", || async { Ok(()) }));
        assert!(!reg.readiness(&lc).await.is_up(), "starting is not ready");
        lc.set_state(ServiceState::Ready);
        assert!(reg.readiness(&lc).await.is_up());
        reg.register(HealthCheck::readiness("db", || async { Err("connection refused".to_owned()) }));
        let report = reg.readiness(&lc).await;
        assert!(!report.is_up());
        assert_eq!(report.checks.iter().find(|c| c.name == "db").unwrap().error.as_deref(), Some("connection refused"));
        reg.deregister("db");
        assert!(reg.readiness(&lc).await.is_up());
        lc.shutdown();
        let report = reg.readiness(&lc).await;
        assert_eq!(report.state, ServiceState::Draining);
        assert!(!report.is_up());
        assert!(reg.liveness(&lc).await.is_up(), "draining is still alive");
    }

    #[tokio::test]
    async fn a_failing_non_critical_check_degrades_without_failing_readiness() {
        let lc = Lifecycle::new();
        lc.set_state(ServiceState::Ready);
        let reg = HealthRegistry::new();
        reg.register(HealthCheck::readiness("cache", || async { Err("connection refused".to_owned()) }).non_critical());
        let report = reg.readiness(&lc).await;
        assert!(report.is_up());
        assert_eq!(report.checks[0].status, CheckStatus::Degraded);
        assert_eq!(report.checks[0].error.as_deref(), Some("connection refused"));
        assert_eq!(serde_json::to_value(report.checks[0].status).unwrap(), "degraded");
    }

    #[tokio::test]
    async fn slow_checks_time_out() {
        let lc = Lifecycle::new();
        lc.set_state(ServiceState::Ready);
        let reg = HealthRegistry::new();
        reg.register(
            HealthCheck::readiness("slow", || async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            })
            .timeout(Duration::from_millis(20)),
        );
        let report = reg.readiness(&lc).await;
        assert!(!report.is_up());
        assert!(report.checks[0].error.as_deref().unwrap().contains("timed out"));
    }
}

//! The [`MessagingPlugin`]: messaging as a plugin of the service.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use microframework_core::{AppContext, BoxError, Component, HealthCheck, Plugin, PluginContext, Probe, ShutdownConfig};
use tokio::sync::Mutex;

use crate::broker::Broker;
use crate::config::MessagingConfig;
use crate::dead_letter::{DeadLetterStore, MemoryDeadLetters};
use crate::messaging::{ConsumerHandle, Messaging};
use crate::subscription::Subscription;

type SubscriptionBuilder = Box<dyn FnOnce(&AppContext) -> Result<Subscription, BoxError> + Send>;

/// Messaging as a plugin: it owns the `messaging` section ([`MessagingConfig`]), provides the
/// [`Messaging`] handle (`ctx.require::<Messaging>()`) and registers the `messaging` component,
/// which connects at start-up, starts the subscriptions, reports readiness, and drains the
/// subscriptions when the service shuts down.
///
/// ```no_run
/// use microframework_messaging::{HandlerError, MessagingPlugin, Subscription};
/// let plugin = MessagingPlugin::new().subscribe(|_ctx| {
///     Ok(Subscription::new("orders.created", |msg| async move {
///         tracing::info!(id = %msg.id, "order created");
///         Ok::<_, HandlerError>(())
///     }))
/// });
/// ```
#[derive(Default)]
pub struct MessagingPlugin {
    subscriptions: Vec<SubscriptionBuilder>,
    dead_letters: Option<Arc<dyn DeadLetterStore>>,
    outbox: bool,
}

impl std::fmt::Debug for MessagingPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagingPlugin").field("subscriptions", &self.subscriptions.len()).finish()
    }
}

impl MessagingPlugin {
    /// The plugin with no subscriptions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subscription, built at start-up with the service's context (after the plugins this
    /// one depends on have started, so `ctx.require::<Database>()` works).
    pub fn subscribe<F>(mut self, build: F) -> Self
    where
        F: FnOnce(&AppContext) -> Result<Subscription, BoxError> + Send + 'static,
    {
        self.subscriptions.push(Box::new(build));
        self
    }

    /// Relays the transactional outbox (`microframework_messaging::outbox`) of the service's
    /// database: the plugin then depends on the `database` plugin, creates the table `mf_outbox`
    /// at start-up, and publishes what committed transactions wrote there.
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    pub fn outbox(mut self) -> Self {
        self.outbox = true;
        self
    }

    /// Keeps dead letters in `store` instead of the process's memory.
    pub fn dead_letters(mut self, store: Arc<dyn DeadLetterStore>) -> Self {
        self.dead_letters = Some(store);
        self
    }
}

impl Plugin for MessagingPlugin {
    type Config = MessagingConfig;

    fn name(&self) -> &str {
        "messaging"
    }

    fn section(&self) -> Option<&str> {
        Some("messaging")
    }

    fn dependencies(&self) -> Vec<String> {
        if self.outbox { vec!["database".to_owned()] } else { Vec::new() }
    }

    fn build(self, config: MessagingConfig, cx: &mut PluginContext<'_>) -> Result<(), BoxError> {
        let store = self.dead_letters.unwrap_or_else(|| Arc::new(MemoryDeadLetters::new(config.dead_letter.max_kept)));
        let messaging = Messaging::new(cx.app().name(), store);
        cx.app().provide(messaging.clone());
        let check = messaging.clone();
        let timeout = config.health_timeout;
        cx.health_check(
            HealthCheck::readiness("messaging", move || {
                let messaging = check.clone();
                async move {
                    let broker = messaging.broker().map_err(|e| e.to_string())?;
                    match tokio::time::timeout(timeout, broker.ping()).await {
                        Ok(outcome) => outcome.map_err(|e| e.to_string()),
                        Err(_) => Err(format!("no answer from {} within {timeout:?}", broker.provider())),
                    }
                }
            })
            .timeout(timeout + Duration::from_millis(500)),
        );
        cx.component(MessagingComponent {
            messaging,
            builders: std::sync::Mutex::new(self.subscriptions),
            running: Arc::new(Mutex::new(Vec::new())),
            connector: None,
            outbox: self.outbox,
            relay: None,
        });
        Ok(())
    }

    /// Connects with the section's settings (at most 5 s), pings and disconnects.
    fn probe(&self, config: &MessagingConfig, app: &AppContext) -> Option<Probe> {
        let service = app.name().to_owned();
        let mut config = config.clone();
        config.connect_timeout = config.connect_timeout.min(Duration::from_secs(5));
        Some(Box::pin(async move {
            let broker = crate::connect(&config, &service).await.map_err(|e| e.to_string())?;
            let ping = broker.ping().await;
            broker.close().await;
            ping.map(|()| format!("reached {}", crate::describe(&config))).map_err(|e| e.to_string())
        }))
    }
}

/// Connects, subscribes, drains.
struct MessagingComponent {
    messaging: Messaging,
    /// Taken at start (a mutex only because components are `Sync`).
    builders: std::sync::Mutex<Vec<SubscriptionBuilder>>,
    running: Arc<Mutex<Vec<ConsumerHandle>>>,
    connector: Option<tokio::task::JoinHandle<()>>,
    /// Whether to relay the outbox, and the relay once started.
    outbox: bool,
    relay: Option<(tokio_util::sync::CancellationToken, tokio::task::JoinHandle<()>)>,
}

#[async_trait]
impl Component for MessagingComponent {
    fn name(&self) -> &str {
        "messaging"
    }

    async fn start(&mut self, ctx: &AppContext) -> Result<(), BoxError> {
        let config: MessagingConfig = ctx.config().section("messaging")?;
        let shutdown: ShutdownConfig = ctx.config().section("shutdown").unwrap_or_default();
        let builders = std::mem::take(self.builders.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner));
        let subscriptions = builders.into_iter().map(|build| build(ctx)).collect::<Result<Vec<_>, _>>()?;

        if self.outbox {
            self.relay = Some(start_relay(ctx, &self.messaging, &config).await?);
        }
        let messaging = self.messaging.clone();
        let running = self.running.clone();
        let closing = ctx.lifecycle().closing_token();
        let service = ctx.name().to_owned();
        match crate::connect(&config, &service).await {
            Ok(broker) => {
                // Subscribed before the service serves.
                messaging.connect(broker);
                start_subscriptions(&messaging, subscriptions, &config, &running).await?;
                self.connector = Some(tokio::spawn(async move {
                    closing.cancelled().await;
                    drain(&running, shutdown.timeout).await;
                }));
            }
            Err(e) if config.required => {
                return Err(
                    format!("{e} (messaging.required is true, so the service does not start without it)").into()
                );
            }
            Err(e) => {
                count_error("connect");
                tracing::warn!(
                    error = %e,
                    "the message broker is unreachable; readiness fails and the service keeps connecting \
                     (set messaging.required: true to refuse to start instead)"
                );
                self.connector = Some(tokio::spawn(async move {
                    let Some(broker) = keep_connecting(&config, &service, &closing).await else { return };
                    messaging.connect(broker);
                    if let Err(e) = start_subscriptions(&messaging, subscriptions, &config, &running).await {
                        tracing::error!(error = %e, "a subscription could not start; its messages wait in the broker");
                    }
                    closing.cancelled().await;
                    drain(&running, shutdown.timeout).await;
                }));
            }
        }
        Ok(())
    }

    async fn stop(&mut self, ctx: &AppContext) -> Result<(), BoxError> {
        let shutdown: ShutdownConfig = ctx.config().section("shutdown").unwrap_or_default();
        drain(&self.running, shutdown.component_timeout.mul_f64(0.7)).await;
        if let Some(task) = self.connector.take() {
            task.abort();
        }
        // The relay finishes its round (what it published is deleted), then stops.
        if let Some((stop, task)) = self.relay.take() {
            stop.cancel();
            let _ = tokio::time::timeout(shutdown.component_timeout.mul_f64(0.2), task).await;
        }
        if let Ok(broker) = self.messaging.broker() {
            broker.close().await;
        }
        Ok(())
    }
}

fn count_error(operation: &'static str) {
    metrics::counter!(microframework_telemetry::metrics::names::MESSAGING_ERRORS, "operation" => operation)
        .increment(1);
}

/// Connects until it works (backing off up to 30 s between attempts) or the service closes.
async fn keep_connecting(
    config: &MessagingConfig,
    service: &str,
    closing: &tokio_util::sync::CancellationToken,
) -> Option<Arc<dyn Broker>> {
    let mut wait = Duration::from_millis(500);
    loop {
        tokio::select! {
            () = closing.cancelled() => return None,
            () = tokio::time::sleep(wait) => {}
        }
        match crate::connect(config, service).await {
            Ok(broker) => {
                tracing::info!(broker = %crate::describe(config), "the message broker is reachable again");
                return Some(broker);
            }
            Err(e) => {
                count_error("connect");
                tracing::warn!(error = %e, retry_in = ?wait, "the message broker is still unreachable");
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Starts every subscription; on an error, those already started keep running.
async fn start_subscriptions(
    messaging: &Messaging,
    subscriptions: Vec<Subscription>,
    config: &MessagingConfig,
    running: &Mutex<Vec<ConsumerHandle>>,
) -> Result<(), BoxError> {
    for subscription in subscriptions {
        let topic = subscription.topic().to_owned();
        let handle = messaging.subscribe(subscription, &config.consumer).await?;
        tracing::debug!(%topic, "subscribed");
        running.lock().await.push(handle);
    }
    Ok(())
}

/// Drains every running subscription at once, within `deadline`.
async fn drain(running: &Mutex<Vec<ConsumerHandle>>, deadline: Duration) {
    let mut running = running.lock().await;
    let handles = std::mem::take(&mut *running);
    futures_util::future::join_all(handles.into_iter().map(|h| h.drain(deadline))).await;
}

/// Creates the outbox table and starts the relay.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
async fn start_relay(
    ctx: &AppContext,
    messaging: &Messaging,
    config: &MessagingConfig,
) -> Result<(tokio_util::sync::CancellationToken, tokio::task::JoinHandle<()>), BoxError> {
    let db = ctx.require::<microframework_data::Database>()?;
    crate::outbox::create_table(&db).await?;
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(crate::outbox::run_relay(db, messaging.clone(), config.outbox.poll_interval, stop.clone()));
    Ok((stop, task))
}

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
async fn start_relay(
    _ctx: &AppContext,
    _messaging: &Messaging,
    _config: &MessagingConfig,
) -> Result<(tokio_util::sync::CancellationToken, tokio::task::JoinHandle<()>), BoxError> {
    Err("the outbox needs a database feature (sqlite, postgres or mysql) of microframework-messaging".into())
}

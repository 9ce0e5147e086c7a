//! The live configuration: current snapshot, registered sections and hot reload.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Config, ConfigError, ConfigSources, Validate};

type SectionCheck = Box<dyn Fn(&Config) -> Result<(), ConfigError> + Send + Sync>;

/// Shared handle to the live configuration.
///
/// Cloning is cheap. [`ConfigHandle::current`] returns the snapshot in effect;
/// [`ConfigHandle::subscribe`] notifies on every accepted reload. A reload re-reads every
/// source and re-validates every section registered with [`ConfigHandle::section`]; if any
/// fails, the reload is rejected and the previous snapshot stays.
#[derive(Clone)]
pub struct ConfigHandle {
    inner: Arc<Inner>,
}

struct Inner {
    sources: ConfigSources,
    current: ArcSwap<Config>,
    checks: Mutex<Vec<(String, SectionCheck)>>,
    tx: watch::Sender<Arc<Config>>,
}

impl std::fmt::Debug for ConfigHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigHandle").field("current", &self.current()).finish()
    }
}

impl ConfigHandle {
    /// Loads the configuration from `sources`.
    pub fn load(sources: ConfigSources) -> Result<Self, ConfigError> {
        let config = Config::load(&sources)?;
        Ok(Self::new(sources, config))
    }

    /// A handle over an already loaded snapshot; reloads re-read `sources`.
    pub fn new(sources: ConfigSources, config: Config) -> Self {
        let config = Arc::new(config);
        let (tx, _) = watch::channel(config.clone());
        Self { inner: Arc::new(Inner { sources, current: ArcSwap::new(config), checks: Mutex::new(Vec::new()), tx }) }
    }

    /// The snapshot in effect.
    pub fn current(&self) -> Arc<Config> {
        self.inner.current.load_full()
    }

    /// The sources this handle reads.
    pub fn sources(&self) -> &ConfigSources {
        &self.inner.sources
    }

    /// Reads and validates section `key` now, and registers it so that every reload validates it
    /// too. Use this for each typed section a component owns.
    pub fn section<T: DeserializeOwned + Validate + 'static>(&self, key: &str) -> Result<T, ConfigError> {
        let value = self.current().section::<T>(key)?;
        let owned = key.to_owned();
        let check: SectionCheck = Box::new(move |c: &Config| c.section::<T>(&owned).map(|_| ()));
        let mut checks = self.inner.checks.lock().unwrap_or_else(|p| p.into_inner());
        if !checks.iter().any(|(k, _)| k == key) {
            checks.push((key.to_owned(), check));
        }
        Ok(value)
    }

    /// A receiver that yields every accepted snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Config>> {
        self.inner.tx.subscribe()
    }

    /// Re-reads every source and validates every registered section. On success the new snapshot
    /// takes effect and subscribers are notified; on failure the old snapshot stays.
    pub fn reload(&self) -> Result<Arc<Config>, ConfigError> {
        let config = Config::load(&self.inner.sources)?;
        let mut error: Option<ConfigError> = None;
        {
            let checks = self.inner.checks.lock().unwrap_or_else(|p| p.into_inner());
            for (_, check) in checks.iter() {
                if let Err(e) = check(&config) {
                    match &mut error {
                        Some(all) => all.extend(e),
                        None => error = Some(e),
                    }
                }
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        let config = Arc::new(config);
        self.inner.current.store(config.clone());
        self.inner.tx.send_replace(config.clone());
        Ok(config)
    }

    /// Watches the config directory and reloads on change (debounced) until `shutdown`.
    ///
    /// Accepted reloads are logged at `info`, rejected ones at `error` with every problem.
    /// Returns an error if the directory cannot be watched.
    pub fn watch_files(&self, shutdown: CancellationToken) -> Result<(), notify::Error> {
        let dir = self.inner.sources.dir.clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(16);
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(event) = res {
                let relevant = event.paths.iter().any(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("config") && n.ends_with(".yaml"))
                });
                if relevant && !event.kind.is_access() {
                    let _ = tx.try_send(());
                }
            }
        })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        let handle = self.clone();
        tokio::spawn(async move {
            let _watcher = watcher;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    got = rx.recv() => if got.is_none() { break },
                }
                // Editors write in several steps; wait for the burst to settle.
                tokio::time::sleep(Duration::from_millis(150)).await;
                while rx.try_recv().is_ok() {}
                match handle.reload() {
                    Ok(_) => {
                        tracing::info!(target: "microframework::config", dir = %dir.display(), "configuration reloaded")
                    }
                    Err(e) => {
                        tracing::error!(target: "microframework::config", "configuration reload rejected, keeping the previous configuration: {e}")
                    }
                }
            }
        });
        Ok(())
    }
}

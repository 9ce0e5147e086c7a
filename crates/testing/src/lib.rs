//! Test support for MicroFramework services.
//!
//! - [`TestApp`]: start a service in-process on a free port with an HTTP client, isolated from
//!   the process environment and from other tests.
//! - [`db::TestDatabase`]: a fresh database per test on the real local PostgreSQL or MariaDB
//!   (or a temporary SQLite file), dropped afterwards.
//! - [`net::FaultProxy`]: a TCP proxy that can cut a connection on demand, to test outages of
//!   real dependencies without stopping the shared server.
//!
//! A test that needs a server which is not running prints that it is skipped, naming the
//! server; under `CI=true` that is a failure instead.

pub mod db;
pub mod net;

use std::path::{Path, PathBuf};

use microframework::config::ConfigSources;
use microframework::core::AppContext;
use microframework::{RunningService, Service, StartupError};

pub use reqwest;

/// A service started in-process for a test.
pub struct TestApp {
    running: Option<RunningService>,
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp").field("base", &self.base).finish_non_exhaustive()
    }
}

/// Configures a [`TestApp`].
#[derive(Debug)]
pub struct TestAppBuilder {
    service: Service,
    config_dir: Option<PathBuf>,
    env: String,
    yaml: Option<String>,
    vars: Vec<(String, String)>,
    overrides: Vec<(String, String)>,
    database_url: Option<String>,
}

impl TestApp {
    /// Starts `service` with an isolated configuration (see [`TestAppBuilder`]); panics if it
    /// cannot start, with the start-up error.
    pub async fn spawn(service: Service) -> Self {
        Self::builder(service).spawn().await
    }

    /// A builder for more control over configuration.
    pub fn builder(service: Service) -> TestAppBuilder {
        TestAppBuilder {
            service,
            config_dir: None,
            env: "test".to_owned(),
            yaml: None,
            vars: Vec::new(),
            overrides: Vec::new(),
            database_url: None,
        }
    }

    /// The HTTP listener's address.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        match &self.running {
            Some(r) => r.local_addr(),
            None => panic!("the TestApp has been shut down"),
        }
    }

    /// The gRPC listener's address, when the service serves gRPC on its own port.
    pub fn grpc_addr(&self) -> Option<std::net::SocketAddr> {
        self.running.as_ref().and_then(|r| r.grpc_addr())
    }

    /// The address of the listener a plugin opened under `name`.
    pub fn listener_addr(&self, name: &str) -> Option<std::net::SocketAddr> {
        self.running.as_ref().and_then(|r| r.listener_addr(name))
    }

    /// The admin listener's address, when `server.admin_port` is set.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.running.as_ref().and_then(|r| r.admin_addr())
    }

    /// The absolute URL of `path` on the admin listener.
    ///
    /// # Panics
    ///
    /// When the service has no admin listener (`server.admin_port` is not set).
    pub fn admin_url(&self, path: &str) -> String {
        match self.admin_addr() {
            Some(addr) => format!("http://{addr}{path}"),
            None => panic!("the service has no admin listener: set server.admin_port"),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A client with a 30 s timeout and no proxy.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.send(self.client.get(self.url(path))).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json<T: serde::Serialize + ?Sized>(&self, path: &str, body: &T) -> reqwest::Response {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put_json<T: serde::Serialize + ?Sized>(&self, path: &str, body: &T) -> reqwest::Response {
        self.send(self.client.put(self.url(path)).json(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.send(self.client.delete(self.url(path))).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> reqwest::Response {
        match req.send().await {
            Ok(r) => r,
            Err(e) => panic!("request to {} failed: {e}", self.base),
        }
    }

    /// The directory holding this app's configuration files; write `config.<env>.yaml` here to
    /// exercise hot reload.
    pub fn config_dir(&self) -> &Path {
        self._dir.path()
    }

    /// The service context (health registry, configuration, resources).
    pub fn context(&self) -> &AppContext {
        match &self.running {
            Some(r) => r.context(),
            None => panic!("the TestApp has been shut down"),
        }
    }

    /// Shuts the service down gracefully and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.context().lifecycle().shutdown();
        }
    }
}

impl TestAppBuilder {
    /// Reads the service's `config.yaml` from `dir` (normally `configs`); by default no file is read.
    pub fn config_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.config_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// The environment name (default `test`).
    pub fn env(mut self, env: impl Into<String>) -> Self {
        self.env = env.into();
        self
    }

    /// YAML with the precedence of `config.<env>.yaml`.
    pub fn yaml(mut self, yaml: impl Into<String>) -> Self {
        self.yaml = Some(yaml.into());
        self
    }

    /// An environment variable seen by the service (the process environment is not read).
    pub fn var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.push((name.into(), value.into()));
        self
    }

    /// A `--set key=value` override.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }

    /// The database URL (default: a SQLite file in a temporary directory).
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }

    /// Starts the service; panics with the start-up error if it fails.
    pub async fn spawn(self) -> TestApp {
        match self.try_spawn().await {
            Ok(app) => app,
            Err(e) => panic!("the service failed to start: {e}"),
        }
    }

    /// Starts the service, returning the start-up error if it fails.
    pub async fn try_spawn(self) -> Result<TestApp, StartupError> {
        let dir = tempfile::tempdir().map_err(|e| StartupError::Http(e.into()))?;
        if let Some(src) = &self.config_dir {
            let base = src.join("config.yaml");
            if base.exists() {
                std::fs::copy(&base, dir.path().join("config.yaml")).map_err(|e| StartupError::Http(e.into()))?;
            }
        }
        if let Some(yaml) = &self.yaml {
            std::fs::write(dir.path().join(format!("config.{}.yaml", self.env)), yaml)
                .map_err(|e| StartupError::Http(e.into()))?;
        }
        // A SQLite file of its own unless the test names a database (where SQLite is compiled in).
        let db_url = self
            .database_url
            .clone()
            .or_else(|| cfg!(feature = "sqlite").then(|| format!("sqlite://{}/app.db?mode=rwc", dir.path().display())));
        let mut sources = ConfigSources::new().dir(dir.path()).env(self.env.clone()).env_vars(self.vars.clone());
        sources = sources
            .set("server.host", "127.0.0.1")
            .set("server.port", "0")
            .set("grpc.host", "127.0.0.1")
            .set("grpc.port", "0");
        if let Some(url) = db_url {
            sources = sources.set("database.url", url);
        }
        for (k, v) in &self.overrides {
            sources = sources.set(k.clone(), v.clone());
        }
        let running = self.service.config_sources(sources).start().await?;
        let base = format!("http://{}", running.local_addr());
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .no_proxy()
            .build()
            .map_err(|e| StartupError::Http(e.into()))?;
        Ok(TestApp { running: Some(running), base, client, _dir: dir })
    }
}

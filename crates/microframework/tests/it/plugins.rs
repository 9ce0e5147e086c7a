//! The plugin seam, from outside: plugins that depend on each other, register components,
//! routes, listeners, checks and shutdown hooks, and fail with their name.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use microframework::axum::Router;
use microframework::axum::routing::get;
use microframework::config::ConfigSources;
use microframework::core::{Validation, async_trait};
use microframework::data::{Database, DatabasePlugin, Migrations};
use microframework::http::HttpParts;
use microframework::http::server::ServeOptions;
use microframework::prelude::*;
use microframework::{StartupError, sqlx};
use microframework_testing::TestApp;

type Log = Arc<Mutex<Vec<String>>>;

#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct CounterConfig {
    start: i64,
}

impl microframework::core::Validate for CounterConfig {
    fn validate(&self, v: &mut Validation) {
        v.check(self.start >= 0, "start", "a number of 0 or more");
    }
}

/// A plugin that needs the database: its component reads a value through the pool at start-up.
struct Counter {
    log: Log,
}

struct CounterComponent {
    start: i64,
    log: Log,
}

#[derive(Clone)]
struct Count(i64);

#[async_trait]
impl Component for CounterComponent {
    fn name(&self) -> &str {
        "counter"
    }

    async fn start(&mut self, ctx: &AppContext) -> Result<(), BoxError> {
        // Only possible if the database component has started first.
        let db = ctx.require::<Database>()?;
        let pool = db.sqlite().ok_or("SQLite expected")?;
        let n: i64 = sqlx::query_scalar("SELECT ? + 1").bind(self.start).fetch_one(pool).await?;
        ctx.provide(Count(n));
        self.log.lock().unwrap().push("start counter".to_owned());
        Ok(())
    }

    async fn stop(&mut self, _: &AppContext) -> Result<(), BoxError> {
        self.log.lock().unwrap().push("stop counter".to_owned());
        Ok(())
    }
}

impl Plugin for Counter {
    type Config = CounterConfig;

    fn name(&self) -> &str {
        "counter"
    }

    fn section(&self) -> Option<&str> {
        Some("counter")
    }

    fn dependencies(&self) -> Vec<String> {
        vec!["database".to_owned()]
    }

    fn build(self, config: CounterConfig, cx: &mut PluginContext<'_>) -> Result<(), BoxError> {
        cx.component(CounterComponent { start: config.start, log: self.log.clone() });
        let log = self.log.clone();
        cx.on_shutdown(move |ctx| async move {
            // Runs after the listeners drained and before components stop: the pool still works.
            let open = ctx.require::<Database>().map(|db| !db.sqlite().is_some_and(|p| p.is_closed()));
            log.lock().unwrap().push(format!("hook database_open={}", open.unwrap_or(false)));
        });
        HttpParts::of(cx).router(|ctx| {
            let Count(n) = ctx.require::<Count>()?;
            Ok(Router::new().route("/count", get(move || async move { n.to_string() })))
        });
        Ok(())
    }
}

/// A plugin with a listener of its own, like gRPC on its own port.
struct SidePort;

impl Plugin for SidePort {
    type Config = NoConfig;

    fn name(&self) -> &str {
        "side"
    }

    fn section(&self) -> Option<&str> {
        None
    }

    fn build(self, _: NoConfig, cx: &mut PluginContext<'_>) -> Result<(), BoxError> {
        HttpParts::of(cx).on_serve(|mut serving| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let router = Router::new().route("/side", get(|| async { "side" }));
            serving.listen("side", listener, router, ServeOptions::default());
            Ok(serving)
        });
        Ok(())
    }
}

/// A plugin whose build step fails.
struct Broken;

impl Plugin for Broken {
    type Config = NoConfig;

    fn name(&self) -> &str {
        "broker"
    }

    fn section(&self) -> Option<&str> {
        None
    }

    fn build(self, _: NoConfig, _: &mut PluginContext<'_>) -> Result<(), BoxError> {
        Err("`broker.url` names no broker this build supports".into())
    }
}

fn counter_service(log: &Log) -> Service {
    Service::new("plugins").database(Migrations::new()).plugin(Counter { log: log.clone() })
}

#[tokio::test]
async fn plugins_start_in_dependency_order_serve_and_stop_in_reverse() {
    let log = Log::default();
    // `counter` is added before the database it needs, on purpose.
    let service = Service::new("plugins").plugin(Counter { log: log.clone() }).database(Migrations::new());
    let app = TestApp::builder(service).yaml("counter:\n  start: 41\n").spawn().await;
    let res = app.get("/count").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "42");
    app.shutdown().await;
    assert_eq!(*log.lock().unwrap(), ["start counter", "hook database_open=true", "stop counter"]);
}

#[tokio::test]
async fn a_plugin_listener_serves_and_drains_with_the_service() {
    let app = TestApp::builder(Service::new("side").plugin(SidePort)).spawn().await;
    let running_addr = app.listener_addr("side").expect("the plugin's listener has an address");
    let body = app.client().get(format!("http://{running_addr}/side")).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "side");
    assert_eq!(app.get("/side").await.status(), 404, "the public listener does not serve it");
    app.shutdown().await;
    assert!(tokio::net::TcpStream::connect(running_addr).await.is_err(), "the listener closed on shutdown");
}

#[tokio::test]
async fn failures_name_the_plugin() {
    let err = TestApp::builder(Service::new("broken").plugin(Broken)).try_spawn().await.err().unwrap();
    assert!(matches!(err, StartupError::Plugin(_)), "{err:?}");
    assert_eq!(err.to_string(), "plugin `broker` failed to build: `broker.url` names no broker this build supports");

    let log = Log::default();
    let err = TestApp::builder(Service::new("lonely").plugin(Counter { log })).try_spawn().await.err().unwrap();
    assert!(err.to_string().contains("plugin `counter` depends on plugin `database`"), "{err}");

    let err = TestApp::builder(
        Service::new("two").database(Migrations::new()).plugin(DatabasePlugin::new(Migrations::new()).named("other")),
    )
    .try_spawn()
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("`database` and `other` both own the configuration section `database`"), "{err}");
}

#[tokio::test]
async fn plugin_sections_are_validated_with_the_framework_sections() {
    let log = Log::default();
    let err = TestApp::builder(counter_service(&log))
        .yaml("counter:\n  start: -1\nserver:\n  keep_alive_timeout: nope\n")
        .try_spawn()
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StartupError::Config(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("counter.start") && text.contains("a number of 0 or more"), "{text}");
    assert!(text.contains("server.keep_alive_timeout"), "one run reports both: {text}");
    assert!(log.lock().unwrap().is_empty(), "nothing started");
}

/// `Service::run` is what `main` returns: the exit code tells configuration errors (2) from
/// failures (1), for plugins as for the rest.
#[tokio::test]
async fn exit_codes_and_check_config_cover_plugins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), "counter:\n  start: -5\n").unwrap();
    let sources = || ConfigSources::new().dir(dir.path()).set("server.port", "0").set("server.host", "127.0.0.1");
    let log = Log::default();

    let code = counter_service(&log).config_sources(sources()).args(["svc", "--check-config"]).run().await;
    assert_eq!(code, ExitCode::from(2), "--check-config validates the plugin's section");
    let code = counter_service(&log).config_sources(sources()).args(["svc"]).run().await;
    assert_eq!(code, ExitCode::from(2));

    let ok = ConfigSources::new().set("server.port", "0").set("server.host", "127.0.0.1");
    let code = Service::new("broken").plugin(Broken).config_sources(ok).args(["svc"]).run().await;
    assert_eq!(code, ExitCode::from(1), "a plugin that fails to build is not a configuration error");
}

//! Messaging in a running service, from outside: an HTTP request publishes and a subscription of
//! the same service handles the message in the request's trace; a broker that is down at
//! start-up either stops the service (`messaging.required`) or keeps readiness failing until it
//! comes; bad configuration is refused with the key named.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use microframework::StartupError;
use microframework::axum::Router;
use microframework::axum::extract::State;
use microframework::axum::routing::post;
use microframework::messaging::{Message, Messaging, MessagingPlugin, Subscription};
use microframework::prelude::*;
use microframework_telemetry::TraceContext;
use microframework_testing::TestApp;
use tokio::sync::mpsc;

fn topic() -> String {
    format!("mfc.it-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// `POST /greet` publishes its body to `topic`; the service's own subscription reports what it
/// handled, with the trace id it ran in.
fn service(topic: &str, seen: mpsc::UnboundedSender<(String, Option<String>)>) -> Service {
    let sub_topic = topic.to_owned();
    let pub_topic = topic.to_owned();
    Service::new("messaging-it")
        .plugin(MessagingPlugin::new().subscribe(move |_ctx| {
            Ok(Subscription::new(sub_topic, move |msg: Message| {
                let seen = seen.clone();
                async move {
                    let trace = TraceContext::current().map(|cx| cx.trace_id());
                    let _ = seen.send((String::from_utf8_lossy(&msg.payload).into_owned(), trace));
                    Ok(())
                }
            }))
        }))
        .router(move |ctx| {
            let messaging = ctx.require::<Messaging>()?;
            Ok(Router::new()
                .route(
                    "/greet",
                    post(|State((m, topic)): State<(Messaging, String)>, body: String| async move {
                        match m.publish(microframework::messaging::Outgoing::new(topic, body)).await {
                            Ok(id) => (microframework::axum::http::StatusCode::ACCEPTED, id),
                            Err(e) => (microframework::axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                        }
                    }),
                )
                .with_state((messaging, pub_topic)))
        })
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("a message within 30 s").expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_publishes_and_the_consumer_runs_in_its_trace() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let topic = topic();
    let app = TestApp::spawn(service(&topic, tx)).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let res =
        app.client().post(app.url("/greet")).header("traceparent", traceparent).body("hello").send().await.unwrap();
    assert_eq!(res.status(), 202);
    let (payload, trace) = next(&mut rx).await;
    assert_eq!(payload, "hello");
    assert_eq!(trace.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    app.shutdown().await;
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn nats_yaml(port: u16, required: bool) -> String {
    format!(
        "messaging:\n  provider: nats\n  url: nats://127.0.0.1:{port}\n  required: {required}\n  connect_timeout: 1s\n  \
         nats:\n    stream: MF_IT\n    subjects: [\"mfc.>\"]\n    max_age: 1h\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_broker_that_is_down_stops_the_start_with_its_name_and_url() {
    let port = free_port();
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = TestApp::builder(service(&topic(), tx)).yaml(nats_yaml(port, true)).try_spawn().await.err().unwrap();
    assert!(matches!(err, StartupError::Component(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("cannot reach nats at nats://127.0.0.1:{port}")), "{text}");
    assert!(text.contains("messaging.required"), "{text}");
}

struct NatsServer(Child);

impl NatsServer {
    fn start(port: u16, dir: &std::path::Path) -> Self {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (.ci/run installs it)");
        Self(child)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_broker_that_is_down_fails_readiness_until_it_comes() {
    let port = free_port();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let topic = topic();
    let app = TestApp::builder(service(&topic, tx)).yaml(nats_yaml(port, false)).spawn().await;
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    let check = body["checks"].as_array().unwrap().iter().find(|c| c["name"] == "messaging").unwrap().clone();
    assert_eq!(check["status"], "down", "{body}");
    assert_eq!(app.post_json("/greet", "x").await.status(), 503, "publishing says the broker is not there");

    let dir = tempfile::tempdir().unwrap();
    let _server = NatsServer::start(port, dir.path());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while app.get("/health/ready").await.status() != 200 {
        assert!(tokio::time::Instant::now() < deadline, "not ready within 60 s of the broker starting");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The subscription started once the broker came.
    let res = app.client().post(app.url("/greet")).body("late").send().await.unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(next(&mut rx).await.0, "late");
    app.shutdown().await;
}

#[tokio::test]
async fn bad_messaging_config_names_the_key() {
    for (yaml, key, expected) in [
        ("messaging:\n  provider: kafkaa\n", "messaging.provider", "one of memory, nats"),
        ("messaging:\n  provider: nats\n", "messaging.url", "URL"),
        ("messaging:\n  consumer:\n    max_attempts: 0\n", "messaging.consumer.max_attempts", "from 1 to 1000"),
        (
            "messaging:\n  provider: nats\n  url: nats://x:4222\n  consumer:\n    handler_timeout: 2m\n",
            "messaging.nats.ack_wait",
            "above `consumer.handler_timeout`",
        ),
        ("messaging:\n  colour: blue\n", "messaging", "colour"),
    ] {
        let (tx, _rx) = mpsc::unbounded_channel();
        let err = TestApp::builder(service("t", tx)).yaml(yaml).try_spawn().await.err().unwrap();
        assert!(matches!(err, StartupError::Config(_)), "{yaml}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(key) && text.contains(expected), "{yaml}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_relays_what_a_request_committed() {
    use microframework::data::{Database, Migrations};
    use microframework::messaging::outbox;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let topic = topic();
    let sub_topic = topic.clone();
    let service = Service::new("outbox-it")
        .database(Migrations::new())
        .plugin(MessagingPlugin::new().outbox().subscribe(move |_ctx| {
            Ok(Subscription::new(sub_topic, move |msg: Message| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(String::from_utf8_lossy(&msg.payload).into_owned());
                    Ok(())
                }
            }))
        }))
        .router(move |ctx| {
            let db = ctx.require::<Database>()?;
            Ok(Router::new()
                .route(
                    "/write/{commit}",
                    post(
                        |State((db, topic)): State<(Database, String)>,
                         microframework::axum::extract::Path(commit): microframework::axum::extract::Path<bool>,
                         body: String| async move {
                            let pool = db.sqlite().expect("SQLite");
                            let mut tx = pool.begin().await.expect("begin");
                            outbox::enqueue(&mut *tx, microframework::messaging::Outgoing::new(topic, body))
                                .await
                                .expect("enqueue");
                            if commit {
                                tx.commit().await.expect("commit")
                            } else {
                                tx.rollback().await.expect("rollback")
                            }
                            "ok"
                        },
                    ),
                )
                .with_state((db, topic)))
        });
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::builder(service)
        .database_url(format!("sqlite://{}/outbox.db?mode=rwc", dir.path().display()))
        .spawn()
        .await;
    assert_eq!(app.client().post(app.url("/write/false")).body("rolled back").send().await.unwrap().status(), 200);
    assert_eq!(app.client().post(app.url("/write/true")).body("committed").send().await.unwrap().status(), 200);
    assert_eq!(next(&mut rx).await, "committed");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv()).await.is_err(),
        "the rolled-back message never comes"
    );
    app.shutdown().await;
}

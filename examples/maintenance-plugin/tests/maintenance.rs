//! The plugin in a real service, over HTTP.

use std::time::Duration;

use maintenance_mode::{Maintenance, MaintenancePlugin};
use microframework::StartupError;
use microframework::prelude::*;
use microframework_testing::TestApp;

fn service() -> Service {
    Service::new("shop").plugin(MaintenancePlugin::new()).router(|_| {
        Ok(axum::Router::new()
            .route("/orders", axum::routing::get(|| async { "orders" }))
            .route("/status/page", axum::routing::get(|| async { "status" })))
    })
}

async fn spawn(yaml: &str) -> TestApp {
    TestApp::builder(service()).yaml(yaml).spawn().await
}

/// Waits for the reload watcher to apply a change: an event, not a duration.
async fn until(switch: &Maintenance, on: bool) {
    for _ in 0..500 {
        if switch.is_enabled() == on {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("maintenance mode never became {on}");
}

#[tokio::test]
async fn off_by_default_and_reports_its_state() {
    let app = spawn("").await;
    let res = app.get("/orders").await;
    assert_eq!(res.status(), 200);
    let state: serde_json::Value = app.get("/maintenance").await.json().await.unwrap();
    assert_eq!(state["enabled"], false);
    assert_eq!(state["retry_after"], "1m");
    app.shutdown().await;
}

#[tokio::test]
async fn on_answers_503_problems_and_spares_framework_endpoints_and_allowed_paths() {
    let app = spawn(
        "maintenance:\n  enabled: true\n  message: Back at 10:00 UTC.\n  retry_after: 120s\n  allow_paths: [\"/status/*\"]\n",
    )
    .await;
    let res = app.get("/orders").await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "120");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["detail"], "Back at 10:00 UTC.");
    assert_eq!(app.get("/status/page").await.status(), 200, "allowed path");
    assert_eq!(app.get("/maintenance").await.status(), 200);
    assert_eq!(app.get("/health/live").await.status(), 200);
    assert_eq!(app.get("/health/ready").await.status(), 200, "readiness stays up unless fail_readiness");
    app.shutdown().await;
}

#[tokio::test]
async fn fail_readiness_takes_the_instance_out_of_rotation() {
    let app = spawn("maintenance:\n  enabled: true\n  fail_readiness: true\n").await;
    assert_eq!(app.get("/health/ready").await.status(), 503);
    app.context().require::<Maintenance>().unwrap().set_enabled(false);
    assert_eq!(app.get("/health/ready").await.status(), 200);
    assert_eq!(app.get("/orders").await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn follows_configuration_reloads_and_keeps_the_old_value_on_a_bad_one() {
    let app = spawn("").await;
    let switch = app.context().require::<Maintenance>().unwrap();
    let file = app.config_dir().join("config.test.yaml");

    std::fs::write(&file, "maintenance:\n  enabled: true\n").unwrap();
    app.context().config().reload().unwrap();
    until(&switch, true).await;
    assert_eq!(app.get("/orders").await.status(), 503);

    // A reload that fails validation is refused, naming the key; the service keeps the old value.
    std::fs::write(&file, "maintenance:\n  enabled: false\n  retry_after: 0s\n").unwrap();
    let err = app.context().config().reload().unwrap_err().to_string();
    assert!(err.contains("maintenance.retry_after"), "{err}");
    assert!(switch.is_enabled());

    std::fs::write(&file, "maintenance:\n  enabled: false\n").unwrap();
    app.context().config().reload().unwrap();
    until(&switch, false).await;
    assert_eq!(app.get("/orders").await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn invalid_sections_stop_start_up_with_every_problem_named() {
    let Err(err) = TestApp::builder(service())
        .yaml("maintenance:\n  retry_after: 0s\n  message: \"\"\n  allow_paths: [orders]\n  colour: red\n")
        .try_spawn()
        .await
    else {
        panic!("start-up must fail");
    };
    assert!(matches!(err, StartupError::Config(_)), "{err}");
    let text = err.to_string();
    for key in ["maintenance.retry_after", "maintenance.message", "maintenance.allow_paths[0]", "maintenance.colour"] {
        assert!(text.contains(key), "{key} missing from: {text}");
    }
}

#[tokio::test]
async fn a_second_copy_of_the_plugin_is_refused() {
    let Err(err) = TestApp::builder(service().plugin(MaintenancePlugin::new())).try_spawn().await else {
        panic!("start-up must fail");
    };
    assert!(err.to_string().contains("the plugin `maintenance` is added twice"), "{err}");
}

//! Logging: every line of a request carries its request id (and trace id), JSON in production,
//! and the level follows hot reloads. Its own test binary, because the logger is process-global.

use std::time::Duration;

use microframework::axum::Router;
use microframework::axum::routing::get;
use microframework::prelude::*;
use microframework_testing::TestApp;
use serde_json::Value;

fn service() -> Service {
    Service::new("log-service").router(|_| {
        Ok(Router::new().route(
            "/work",
            get(|| async {
                tracing::info!("step one");
                tracing::debug!("debug detail");
                let span = tracing::info_span!("inner", job = "resize");
                let _g = span.enter();
                tracing::warn!("step two");
                "done"
            }),
        ))
    })
}

fn lines(dir: &std::path::Path) -> Vec<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        out.extend(text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()));
    }
    out
}

async fn wait_for(dir: &std::path::Path, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    for _ in 0..100 {
        let all = lines(dir);
        if all.iter().any(&pred) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no log line {what}: {:?}", lines(dir));
}

#[tokio::test]
async fn request_lines_carry_ids_and_the_level_changes_at_runtime() {
    let logs = tempfile::tempdir().unwrap();
    let yaml = format!(
        "logging:\n  level: info\n  format: json\n  file:\n    dir: {}\n    rotation: never\n",
        logs.path().display()
    );
    let app = TestApp::builder(service()).yaml(yaml.clone()).spawn().await;

    let res = app
        .client()
        .get(app.url("/work"))
        .header("x-request-id", "req-123")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let all = wait_for(logs.path(), "step two", |l| l["message"] == "step two").await;
    let request_lines: Vec<&Value> =
        all.iter().filter(|l| l["message"] == "step one" || l["message"] == "step two").collect();
    assert_eq!(request_lines.len(), 2, "{all:?}");
    for line in &request_lines {
        assert_eq!(line["request_id"], "req-123", "{line}");
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{line}");
        assert_eq!(line["route"], "/work");
        assert_eq!(line["method"], "GET");
        assert_eq!(line["path"], "/work");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    let two = request_lines.iter().find(|l| l["message"] == "step two").unwrap();
    assert_eq!(two["job"], "resize", "fields of nested spans are kept");
    assert_eq!(two["span"], "inner", "the innermost span names the line");
    assert_eq!(two["level"], "WARN");
    assert!(all.iter().all(|l| l["message"] != "debug detail"), "debug is off at level info");

    // Raise the level through the config file: the change applies without a restart.
    std::fs::write(app.config_dir().join("config.test.yaml"), yaml.replace("level: info", "level: debug")).unwrap();
    for _ in 0..100 {
        app.get("/work").await;
        if lines(logs.path()).iter().any(|l| l["message"] == "debug detail") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the level did not change after reload");
}

//! Liveness and readiness with per-check status and latency, custom checks, draining.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use microframework::prelude::*;
use microframework_testing::TestApp;
use serde_json::Value;

use crate::common::service;

#[tokio::test]
async fn live_and_ready_report_checks_as_json() {
    let app = TestApp::spawn(service()).await;
    let res = app.get("/health/live").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "up");
    assert_eq!(body["state"], "ready");

    let healthy = Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    app.context().health().register(HealthCheck::readiness("payments-api", move || {
        let ok = flag.load(Ordering::SeqCst);
        async move { if ok { Ok(()) } else { Err("payments-api answered 502".to_owned()) } }
    }));
    let body: Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(body["checks"][0]["name"], "payments-api");
    assert_eq!(body["checks"][0]["status"], "up");
    assert!(body["checks"][0]["latency_ms"].is_number());

    healthy.store(false, Ordering::SeqCst);
    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "down");
    assert_eq!(body["checks"][0]["error"], "payments-api answered 502");
    assert_eq!(app.get("/health").await.status(), 503, "/health is readiness with details");
    assert_eq!(app.get("/health/live").await.status(), 200, "a dependency does not affect liveness");
}

#[tokio::test]
async fn readiness_fails_while_draining_but_requests_are_still_served() {
    let app = TestApp::builder(service()).yaml("shutdown:\n  drain_delay: 1s\n").spawn().await;
    assert_eq!(app.get("/health/ready").await.status(), 200);
    app.context().lifecycle().shutdown();
    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.json::<Value>().await.unwrap()["state"], "draining");
    assert_eq!(app.get("/hello").await.status(), 200, "the listener serves during the drain delay");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(app.client().get(app.url("/hello")).send().await.is_err(), "after the delay the listener is closed");
}

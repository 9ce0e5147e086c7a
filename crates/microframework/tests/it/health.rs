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

#[tokio::test]
async fn the_admin_port_serves_metrics_and_details_and_the_public_port_neither() {
    let app = TestApp::builder(service()).env("prod").set("server.admin_port", "0").spawn().await;
    let admin = app.admin_addr().expect("an admin listener");
    assert_ne!(admin.port(), app.local_addr().port());
    app.context().health().register(HealthCheck::readiness("payments-api", || async {
        Err("connect to 10.3.4.5:5432 failed: password authentication failed for user \"svc\"".to_owned())
    }));

    // Public: no /metrics, readiness without the error text.
    assert_eq!(app.get("/metrics").await.status(), 404);
    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["checks"][0]["name"], "payments-api");
    assert_eq!(body["checks"][0]["status"], "down");
    assert!(body["checks"][0].get("error").is_none(), "{body}");
    let body = app.get("/health").await.text().await.unwrap();
    assert!(!body.contains("10.3.4.5"), "{body}");

    // Admin: /metrics, and the full details.
    let metrics = app.client().get(app.admin_url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains("http_requests_total"));
    let body: Value = app.client().get(app.admin_url("/health/ready")).send().await.unwrap().json().await.unwrap();
    assert!(body["checks"][0]["error"].as_str().unwrap().contains("10.3.4.5"), "{body}");
    assert_eq!(app.client().get(app.admin_url("/health/live")).send().await.unwrap().status(), 200);
    let res = app.client().get(app.admin_url("/hello")).send().await.unwrap();
    assert_eq!(res.status(), 404, "user routes are not on the admin port");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn readiness_details_are_public_only_in_dev_without_an_admin_port() {
    for (env, details) in [("dev", true), ("prod", false)] {
        let app = TestApp::builder(service()).env(env).spawn().await;
        app.context().health().register(HealthCheck::readiness("cache", || async { Err("secret detail".to_owned()) }));
        let body: Value = app.get("/health/ready").await.json().await.unwrap();
        assert_eq!(body["checks"][0].get("error").is_some(), details, "{env}: {body}");
        assert_eq!(app.get("/metrics").await.status(), 200, "{env}: /metrics stays public without an admin port");
    }
}

#[tokio::test]
async fn the_admin_port_must_differ_from_the_public_port() {
    let err = TestApp::builder(service())
        .set("server.port", "18080")
        .set("server.admin_port", "18080")
        .try_spawn()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.admin_port"), "{err}");
}

//! The default middleware stack: request ids, security headers, CORS, OpenAPI, custom layers.

use microframework::axum::http::{HeaderValue, header};
use microframework_testing::TestApp;
use serde_json::Value;

use crate::common::service;

#[tokio::test]
async fn request_ids_are_generated_accepted_and_replaced_when_unsafe() {
    let app = TestApp::spawn(service()).await;
    let res = app.get("/hello").await;
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID is generated: {id}");

    let res = app.client().get(app.url("/hello")).header("x-request-id", "client-abc-123").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-abc-123");

    let long = "a".repeat(300);
    let res = app.client().get(app.url("/hello")).header("x-request-id", long.as_str()).send().await.unwrap();
    assert_ne!(res.headers()["x-request-id"].to_str().unwrap(), long);
    // Problem bodies carry the same id.
    let res = app.client().get(app.url("/nope")).header("x-request-id", "trace-me").send().await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["request_id"], "trace-me");
}

#[tokio::test]
async fn security_headers_are_set_and_hsts_only_when_configured() {
    let app = TestApp::spawn(service()).await;
    let res = app.get("/hello").await;
    let h = res.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    assert!(h.get("referrer-policy").is_some());
    assert!(h.get("strict-transport-security").is_none());

    let app = TestApp::builder(service())
        .yaml("http:\n  security_headers:\n    frame_options: SAMEORIGIN\n    hsts:\n      enabled: true\n      max_age: 1d\n")
        .spawn()
        .await;
    let res = app.get("/nope").await;
    assert_eq!(res.headers()["x-frame-options"], "SAMEORIGIN");
    assert_eq!(res.headers()["strict-transport-security"], "max-age=86400; includeSubDomains");

    let app = TestApp::builder(service()).yaml("http:\n  security_headers:\n    enabled: false\n").spawn().await;
    assert!(app.get("/hello").await.headers().get("x-frame-options").is_none());
}

#[tokio::test]
async fn cors_answers_preflight_for_allowed_origins_only() {
    let app = TestApp::builder(service())
        .yaml("http:\n  cors:\n    enabled: true\n    allowed_origins: [\"https://app.example.com\"]\n")
        .spawn()
        .await;
    let res = app
        .client()
        .request(microframework_testing::reqwest::Method::OPTIONS, app.url("/echo"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.com");
    let res = app.client().get(app.url("/hello")).header("origin", "https://evil.example.com").send().await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn openapi_document_and_offline_docs_ui() {
    let app = TestApp::spawn(service()).await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["info"]["title"], "it-service");
    assert_eq!(doc["info"]["version"], "1.2.3");
    assert!(doc["info"].get("license").is_none() && doc["info"].get("contact").is_none(), "{}", doc["info"]);
    assert!(doc["paths"]["/echo"]["post"].is_object());
    assert!(doc["paths"]["/health/ready"]["get"].is_object());
    assert!(doc["components"]["schemas"]["Payload"].is_object());

    let res = app.get("/docs/").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Every script and stylesheet the page loads is served by the service itself.
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-initializer.js"] {
        let res = app.get(&format!("/docs/{asset}")).await;
        assert_eq!(res.status(), 200, "{asset}");
    }
    assert!(!html.contains("https://"), "no asset comes from the internet");

    let app = TestApp::builder(service()).yaml("http:\n  openapi:\n    enabled: false\n").spawn().await;
    assert_eq!(app.get("/openapi.json").await.status(), 404);
}

async fn stamp(mut res: microframework::axum::response::Response) -> microframework::axum::response::Response {
    res.headers_mut().insert("x-stamp", HeaderValue::from_static("yes"));
    res
}

#[tokio::test]
async fn services_can_add_any_tower_layer_and_mount_plain_routers() {
    let svc = service().layer(microframework::axum::middleware::map_response(stamp)).router(|_| {
        Ok(microframework::axum::Router::new()
            .route("/extra", microframework::axum::routing::get(|| async { "extra" })))
    });
    let app = TestApp::spawn(svc).await;
    let res = app.get("/extra").await;
    assert_eq!(res.headers()["x-stamp"], "yes");
    assert_eq!(res.text().await.unwrap(), "extra");
    // The layer wraps the service's routes, not the framework endpoints.
    assert!(app.get("/health/live").await.headers().get("x-stamp").is_none());
    let res = app.get("/hello").await;
    assert_eq!(res.headers().get(header::CONTENT_TYPE).unwrap(), "text/plain; charset=utf-8");
}

#[tokio::test]
async fn route_conflicts_are_start_up_errors_not_panics() {
    let svc = service().router(|_| {
        Ok(microframework::axum::Router::new()
            .route("/health/live", microframework::axum::routing::get(|| async { "mine" })))
    });
    let err = TestApp::builder(svc).try_spawn().await.unwrap_err();
    assert!(err.to_string().contains("conflicting routes"), "{err}");
}

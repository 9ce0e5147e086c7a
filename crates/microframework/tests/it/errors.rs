//! Every error is problem+json: bad input of each kind, unknown routes, panics.

use microframework_testing::TestApp;
use serde_json::Value;

use crate::common::service;

async fn problem(res: microframework_testing::reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    assert_eq!(
        res.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "status {status}"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().unwrap().starts_with("https://"));
    assert!(body["title"].is_string());
    assert!(body["request_id"].is_string(), "{body}");
    (status, body)
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = TestApp::spawn(service()).await;
    let res = app
        .client()
        .post(app.url("/echo"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = problem(res).await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("not valid JSON"), "{body}");
    assert_eq!(body["instance"], "/echo");
}

#[tokio::test]
async fn wrong_shape_is_422_naming_the_field() {
    let app = TestApp::spawn(service()).await;
    let (status, body) = problem(app.post_json("/echo", &serde_json::json!({"name": "a", "age": "old"})).await).await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["field"], "age");
}

#[tokio::test]
async fn validation_failures_list_every_field() {
    let app = TestApp::spawn(service()).await;
    let (status, body) = problem(app.post_json("/echo", &serde_json::json!({"name": "", "age": 999})).await).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["age", "name"]);
    assert_eq!(body["errors"][0]["message"], "must be between 0 and 150");
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = TestApp::spawn(service()).await;
    let res =
        app.client().post(app.url("/echo")).header("content-type", "text/plain").body("name=a").send().await.unwrap();
    let (status, _) = problem(res).await;
    assert_eq!(status, 415);
    let res = app.client().post(app.url("/echo")).body("{}").send().await.unwrap();
    assert_eq!(problem(res).await.0, 415);
}

#[tokio::test]
async fn oversize_body_is_413_with_and_without_content_length() {
    let app = TestApp::builder(service()).yaml("http:\n  body_limit:\n    max: 1KiB\n").spawn().await;
    let big = format!("{{\"name\":\"{}\",\"age\":1}}", "x".repeat(4096));
    let res = app
        .client()
        .post(app.url("/echo"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let (status, body) = problem(res).await;
    assert_eq!(status, 413);
    assert!(body["detail"].as_str().unwrap().contains("1024 bytes"), "{body}");
    // A streamed body has no Content-Length: the limit applies while reading.
    let stream = futures_util::stream::iter(
        big.into_bytes().chunks(512).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    let res = app
        .client()
        .post(app.url("/echo"))
        .header("content-type", "application/json")
        .body(microframework_testing::reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res).await.0, 413);
}

#[tokio::test]
async fn unknown_route_is_404_and_wrong_method_is_405() {
    let app = TestApp::spawn(service()).await;
    let (status, body) = problem(app.get("/does/not/exist").await).await;
    assert_eq!(status, 404);
    assert_eq!(body["detail"], "No route matches `GET /does/not/exist`.");
    let res = app.delete("/hello").await;
    assert!(res.headers().get("allow").is_some(), "405 keeps its Allow header");
    let (status, body) = problem(res).await;
    assert_eq!(status, 405);
    assert_eq!(body["code"], "method_not_allowed");
}

#[tokio::test]
async fn plain_axum_rejections_and_bare_statuses_become_problems() {
    let app = TestApp::spawn(service()).await;
    // axum::Json's own rejection (text/plain) is rewritten.
    let res = app
        .client()
        .post(app.url("/plain-json"))
        .header("content-type", "application/json")
        .body("[1,2]")
        .send()
        .await
        .unwrap();
    let (status, body) = problem(res).await;
    assert_eq!(status, 422);
    assert!(body["detail"].as_str().unwrap().contains("Failed to deserialize"), "{body}");
    let (status, body) = problem(app.get("/status/404").await).await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap()),
        (404, "Not Found"),
        "a handler's 404 is not a missing route"
    );
    let (status, body) = problem(app.get("/status/409").await).await;
    assert_eq!((status, body["code"].as_str().unwrap()), (409, "conflict"));
    assert_eq!(app.get("/status/204").await.status(), 204);
}

#[tokio::test]
async fn panics_become_500_and_the_service_lives_on() {
    let app = TestApp::spawn(service()).await;
    let (status, body) = problem(app.get("/panic").await).await;
    assert_eq!(status, 500);
    assert!(!body.to_string().contains("boom"), "panic messages are not leaked: {body}");
    assert_eq!(app.get("/hello").await.text().await.unwrap(), "hi");
}

#[tokio::test]
async fn slow_requests_time_out_with_503() {
    let app = TestApp::builder(service()).yaml("http:\n  timeout:\n    duration: 200ms\n").spawn().await;
    let (status, body) = problem(app.get("/slow?ms=2000").await).await;
    assert_eq!(status, 503);
    assert_eq!(body["code"], "timeout");
    assert!(body["detail"].as_str().unwrap().contains("200ms"), "{body}");
    assert_eq!(app.get("/slow?ms=10").await.status(), 200);
}

#[tokio::test]
async fn bad_query_parameters_are_400() {
    let app = TestApp::spawn(service()).await;
    let (status, _) = problem(app.get("/slow?ms=soon").await).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_error_body_that_never_ends_is_cut_at_the_request_deadline() {
    let app = TestApp::builder(service()).set("http.timeout.duration", "300ms").spawn().await;
    let res = tokio::time::timeout(std::time::Duration::from_secs(10), app.get("/endless-error"))
        .await
        .expect("answered within the deadline, not held by the body");
    let (status, body) = problem(res).await;
    assert_eq!(status, 502);
    assert_eq!(body["status"], 502, "{body}");
}

//! Prometheus metrics: RED per route template, bounded labels, process and custom metrics.

use microframework_testing::TestApp;

use crate::common::service;

fn series<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(name) && !l.starts_with('#')).collect()
}

#[tokio::test]
async fn requests_are_counted_per_route_template_with_bounded_labels() {
    let app = TestApp::spawn(service()).await;
    for code in [200u16, 201, 404, 409, 503] {
        app.get(&format!("/status/{code}")).await;
    }
    for i in 0..25 {
        app.get(&format!("/random/{i}/{}", uuid::Uuid::new_v4())).await;
    }
    app.post_json("/orders", &serde_json::json!({})).await;
    let text = app.get("/metrics").await.text().await.unwrap();

    let requests = series(&text, "http_requests_total{");
    assert!(requests.iter().any(|l| l.contains("route=\"/status/{code}\"") && l.contains("status=\"409\"")), "{text}");
    assert!(requests.iter().all(|l| !l.contains("/random/")), "raw paths never become labels");
    assert!(requests.iter().any(|l| l.contains("route=\"unmatched\"") && l.contains("status=\"404\"")));
    let errors = series(&text, "http_requests_errors_total{");
    assert!(errors.iter().any(|l| l.contains("status=\"503\"")), "{text}");
    assert!(errors.iter().all(|l| !l.contains("status=\"409\"")), "4xx are not server errors");
    assert!(text.contains("http_request_duration_seconds_bucket{"), "latency is a histogram");
    assert!(text.contains("le=\"0.005\""));
    // Process and runtime metrics.
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
    assert!(text.contains("tokio_workers"));
    // Business metrics through the API.
    assert!(text.contains("orders_created_total{"), "{text}");
    // Unknown methods are bounded too.
    let res = app
        .client()
        .request(microframework_testing::reqwest::Method::from_bytes(b"BREW").unwrap(), app.url("/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(!text.contains("BREW"));
    assert!(text.contains("method=\"OTHER\""));
}

#[tokio::test]
async fn metrics_endpoint_can_be_moved_or_switched_off() {
    let app = TestApp::builder(service()).yaml("metrics:\n  path: /internal/metrics\n").spawn().await;
    assert_eq!(app.get("/internal/metrics").await.status(), 200);
    let app = TestApp::builder(service()).yaml("metrics:\n  enabled: false\n").spawn().await;
    assert_eq!(app.get("/metrics").await.status(), 404);
}

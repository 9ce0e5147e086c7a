//! Rate limiting per client IP and per subject, with hot reload.

use microframework_testing::TestApp;
use serde_json::Value;

use crate::common::{jwt_yaml, service, token};

#[tokio::test]
async fn per_ip_limit_answers_429_with_retry_after() {
    let app = TestApp::builder(service())
        .yaml("http:\n  rate_limit:\n    enabled: true\n    per_ip: { requests_per_second: 1, burst: 3 }\n")
        .spawn()
        .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.get("/hello").await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let res = app.get("/hello").await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "too_many_requests");
    assert_eq!(app.get("/health/ready").await.status(), 200, "health endpoints are exempt");
}

#[tokio::test]
async fn authenticated_subjects_have_their_own_buckets() {
    let yaml = format!(
        "{}http:\n  rate_limit:\n    enabled: true\n    per_ip: {{ requests_per_second: 1, burst: 1 }}\n    per_subject: {{ requests_per_second: 1, burst: 2 }}\n",
        jwt_yaml("")
    );
    let app = TestApp::builder(service()).yaml(yaml).spawn().await;
    let (alice, bob) = (token("alice", 60), token("bob", 60));
    let get = |t: String| {
        let req = app.client().get(app.url("/maybe")).bearer_auth(t);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!([get(alice.clone()).await, get(alice.clone()).await, get(alice.clone()).await], [200, 200, 429]);
    assert_eq!(get(bob.clone()).await, 200, "another subject is not affected");
    assert_eq!(app.get("/maybe").await.status(), 200, "anonymous requests use the IP bucket");
    assert_eq!(app.get("/maybe").await.status(), 429);
}

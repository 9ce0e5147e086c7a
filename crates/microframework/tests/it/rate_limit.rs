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
async fn authenticated_subjects_also_have_their_own_buckets() {
    let yaml = format!(
        "{}http:\n  rate_limit:\n    enabled: true\n    per_ip: {{ requests_per_second: 1, burst: 6 }}\n    per_subject: {{ requests_per_second: 1, burst: 2 }}\n",
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
    // Every request, authenticated or not, also took a token from the address's bucket (6).
    assert_eq!(app.get("/maybe").await.status(), 200);
    assert_eq!(app.get("/maybe").await.status(), 200);
    assert_eq!(app.get("/maybe").await.status(), 429);
}

#[tokio::test]
async fn a_flood_of_forged_tokens_is_limited_before_verification() {
    let yaml = format!(
        "{}http:\n  rate_limit:\n    enabled: true\n    per_ip: {{ requests_per_second: 1, burst: 5 }}\n",
        jwt_yaml("")
    );
    let app = TestApp::builder(service()).yaml(yaml).spawn().await;
    let forged = microframework::auth::JwtSigner::hs256(b"not the server's secret, but long enough")
        .sign(&serde_json::json!({"sub": "mallory", "exp": 4_000_000_000u64}))
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(app.client().get(app.url("/maybe")).bearer_auth(&forged).send().await.unwrap().status().as_u16());
    }
    // The first ones are checked (401); then the address's bucket is empty and the rest are
    // refused before any signature check (429).
    assert_eq!(&statuses[..5], [401; 5], "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

#[tokio::test]
async fn a_forged_first_forwarded_for_entry_does_not_buy_a_new_bucket() {
    // The test client connects from 127.0.0.1: here, that is the trusted proxy.
    let yaml = "http:\n  client_ip:\n    trusted_proxies: [127.0.0.1/32]\n  rate_limit:\n    enabled: true\n    \
                per_ip: { requests_per_second: 1, burst: 20 }\n";
    let app = TestApp::builder(service()).yaml(yaml).spawn().await;
    let mut refused = 0;
    for i in 0..200 {
        // What the client wrote, then what the proxy appended: the address it saw.
        let xff = format!("198.51.{}.{}, 203.0.113.7", i / 250, i % 250);
        let res = app.client().get(app.url("/hello")).header("x-forwarded-for", xff).send().await.unwrap();
        if res.status() == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 150, "{refused} of 200 refused: each forged entry got a bucket of its own");

    // Another client behind the same proxy has its own bucket.
    let res = app.client().get(app.url("/hello")).header("x-forwarded-for", "203.0.113.8").send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let yaml = "http:\n  client_ip:\n    trusted_proxies: [10.0.0.0/8]\n  rate_limit:\n    enabled: true\n    \
                per_ip: { requests_per_second: 1, burst: 3 }\n";
    let app = TestApp::builder(service()).yaml(yaml).spawn().await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let res = app.client().get(app.url("/hello")).header("x-forwarded-for", format!("203.0.113.{i}")).send().await;
        statuses.push(res.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429], "127.0.0.1 is not a trusted proxy: its own bucket");
}

#[tokio::test]
async fn trusting_every_address_is_refused_at_start_up() {
    let err = TestApp::builder(service())
        .yaml("http:\n  client_ip:\n    trusted_proxies: [0.0.0.0/0]\n")
        .try_spawn()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("http.client_ip.trusted_proxies.0"), "{err}");
    let err = TestApp::builder(service())
        .yaml("http:\n  rate_limit:\n    trust_forwarded_for: true\n")
        .try_spawn()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("http.rate_limit.trust_forwarded_for") && err.contains("http.client_ip"), "{err}");
}

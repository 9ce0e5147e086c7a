//! JWT authentication through the default stack.

use microframework_testing::TestApp;
use serde_json::Value;

use crate::common::{SECRET, jwt_yaml, service, token};

fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn get_with(app: &TestApp, path: &str, token: &str) -> microframework_testing::reqwest::Response {
    app.client().get(app.url(path)).bearer_auth(token).send().await.unwrap()
}

#[tokio::test]
async fn valid_tokens_expose_claims_to_handlers() {
    let app = TestApp::builder(service()).yaml(jwt_yaml("")).spawn().await;
    let res = get_with(&app, "/whoami", &token("alice", 300)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "alice");
    assert_eq!(app.get("/maybe").await.text().await.unwrap(), "anonymous");
    assert_eq!(get_with(&app, "/maybe", &token("bob", 300)).await.text().await.unwrap(), "bob");
}

#[tokio::test]
async fn missing_expired_forged_and_unsigned_tokens_are_401() {
    let app = TestApp::builder(service()).yaml(jwt_yaml("    leeway_seconds: 5\n")).spawn().await;

    let res = app.client().get(app.url("/whoami")).header("x-request-id", "auth-1").send().await.unwrap();
    assert_eq!(res.status(), 401, "a route that takes Claims requires a token");
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["request_id"].as_str(), body["instance"].as_str()), (Some("auth-1"), Some("/whoami")));

    let res = get_with(&app, "/whoami", &token("alice", -3600)).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "unauthenticated");

    let forged = microframework::auth::JwtSigner::hs256(b"another-secret-that-is-long-enough-000000")
        .sign(&serde_json::json!({"sub": "mallory", "exp": 4_000_000_000u64}))
        .unwrap();
    assert_eq!(
        get_with(&app, "/maybe", &forged).await.status(),
        401,
        "an invalid token is refused even where optional"
    );

    let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(r#"{"sub":"mallory","exp":4000000000}"#));
    assert_eq!(get_with(&app, "/whoami", &none).await.status(), 401);
    let res =
        app.client().get(app.url("/whoami")).header("authorization", "Basic YWxpY2U6cGFzcw==").send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(get_with(&app, "/whoami", "not.a.token").await.status(), 401);
    assert_eq!(app.get("/hello").await.status(), 200, "routes without Claims stay public");
    let _ = SECRET;
}

#[tokio::test]
async fn required_mode_protects_everything_but_public_and_framework_paths() {
    let yaml = jwt_yaml("    required: true\n    public_paths: [\"/hello\", \"/status/*\"]\n");
    let app = TestApp::builder(service()).yaml(yaml).spawn().await;
    assert_eq!(app.get("/maybe").await.status(), 401);
    assert_eq!(app.get("/hello").await.status(), 200);
    assert_eq!(app.get("/status/204").await.status(), 204);
    assert_eq!(app.get("/health/ready").await.status(), 200);
    assert_eq!(app.get("/metrics").await.status(), 200);
    assert_eq!(app.get("/openapi.json").await.status(), 200);
    assert_eq!(get_with(&app, "/maybe", &token("carol", 60)).await.text().await.unwrap(), "carol");
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

#[tokio::test]
async fn invalid_jwt_configuration_fails_start_up_naming_keys() {
    let err = TestApp::builder(service())
        .yaml("auth:\n  jwt:\n    secret: short\n    leeway_seconds: 99999\n")
        .try_spawn()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("auth.jwt.secret"), "{text}");
    assert!(text.contains("auth.jwt.leeway_seconds"), "{text}");
}

fn fixture(name: &str) -> String {
    format!("{}/../auth/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn rs256_and_es256_keys_from_config() {
    for (alg, private, public) in
        [("RS256", "rsa_private.pem", "rsa_public.pem"), ("ES256", "ec_private.pem", "ec_public.pem")]
    {
        let yaml =
            format!("auth:\n  jwt:\n    public_key: {}\n    issuer: it\n    audience: it-api\n", fixture(public));
        let app = TestApp::builder(service()).yaml(yaml).spawn().await;
        let pem = std::fs::read(fixture(private)).unwrap();
        let signer = microframework::auth::JwtSigner::from_pem(alg, &pem).unwrap();
        let ok = signer
            .sign(&serde_json::json!({"sub": "dana", "iss": "it", "aud": "it-api", "exp": 4_000_000_000u64}))
            .unwrap();
        assert_eq!(get_with(&app, "/whoami", &ok).await.text().await.unwrap(), "dana", "{alg}");
        let wrong_iss = signer
            .sign(&serde_json::json!({"sub": "dana", "iss": "other", "aud": "it-api", "exp": 4_000_000_000u64}))
            .unwrap();
        assert_eq!(get_with(&app, "/whoami", &wrong_iss).await.status(), 401, "{alg}");
        let wrong_aud = signer
            .sign(&serde_json::json!({"sub": "dana", "iss": "it", "aud": "billing-api", "exp": 4_000_000_000u64}))
            .unwrap();
        assert_eq!(get_with(&app, "/whoami", &wrong_aud).await.status(), 401, "{alg}");
        // Algorithm confusion: an HS256 token keyed with the public key text is refused.
        let confused = microframework::auth::JwtSigner::hs256(&std::fs::read(fixture(public)).unwrap())
            .sign(&serde_json::json!({"sub": "eve", "iss": "it", "exp": 4_000_000_000u64}))
            .unwrap();
        assert_eq!(get_with(&app, "/whoami", &confused).await.status(), 401, "{alg}");
    }
}

#[tokio::test]
async fn an_unreachable_jwks_makes_readiness_fail_without_blocking_start_up() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let yaml = format!(
        "auth:\n  jwt:\n    jwks_url: http://127.0.0.1:{port}/jwks.json\n    audience: it-api\n    jwks_timeout: 1s\n"
    );
    let app = TestApp::builder(service()).yaml(yaml).spawn().await;
    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert!(body["checks"].as_array().unwrap().iter().any(|c| c["name"] == "jwks" && c["status"] == "down"), "{body}");
    let res = get_with(&app, "/whoami", &token("x", 60)).await;
    assert!(res.status() == 401 || res.status() == 503, "{}", res.status());
}

#[tokio::test]
async fn readiness_probes_do_not_hammer_a_failing_jwks_endpoint() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // An identity provider that answers 503: every fetch fails and is counted.
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let idp = microframework::axum::Router::new().route(
        "/jwks.json",
        microframework::axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { microframework::axum::http::StatusCode::SERVICE_UNAVAILABLE }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { microframework::axum::serve(listener, idp).await.unwrap() });

    let yaml = format!("auth:\n  jwt:\n    jwks_url: {url}\n    audience: it-api\n    jwks_timeout: 1s\n");
    let app = TestApp::builder(service()).yaml(yaml).spawn().await;
    let at_start = hits.load(Ordering::SeqCst);
    assert_eq!(at_start, 1, "one fetch at start-up");
    // A burst of probes (a kubelet every second, several load balancers...): at most one more
    // fetch, however many probes.
    for _ in 0..20 {
        assert_eq!(app.get("/health/ready").await.status(), 503);
    }
    assert!(hits.load(Ordering::SeqCst) <= at_start + 1, "{} fetches", hits.load(Ordering::SeqCst));
}

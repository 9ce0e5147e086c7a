//! Authentication at the upgrade: header claims, `?access_token=`, `require_auth`.

use std::time::Duration;

use microframework::auth::{JwtConfig, JwtVerifier};
use serde_json::{Value, json};

use crate::common::{SECRET, Server, closed, jwt_yaml, recv, send, token};

async fn whoami(ws: &mut crate::common::Ws) -> Value {
    send(ws, json!({"type": "whoami", "id": "w"})).await;
    recv(ws).await["data"].clone()
}

#[tokio::test]
async fn require_auth_refuses_anonymous_upgrades_and_accepts_query_tokens() {
    // No verifier passed: the one of `auth.jwt` is used.
    let yaml = format!("{}websocket:\n  require_auth: true\n", jwt_yaml());
    let server = Server::start(&yaml).await;

    let (status, body) = server.try_connect("/ws", &[]).await.expect_err("anonymous is refused");
    assert_eq!(status, 401, "{body}");
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["code"], "unauthenticated");

    let mut ws = server.connect_to(&format!("/ws?access_token={}", token("alice"))).await;
    assert_eq!(whoami(&mut ws).await, "alice");

    // The Authorization header works too (verified by the HTTP stack).
    let bearer = format!("Bearer {}", token("bob"));
    let mut ws = server.try_connect("/ws", &[("authorization", &bearer)]).await.unwrap();
    assert_eq!(whoami(&mut ws).await, "bob");

    // An invalid query token is refused.
    let forged = microframework::auth::JwtSigner::hs256(b"another-secret-that-is-long-enough-000000")
        .sign(&json!({"sub": "mallory", "exp": 4_000_000_000u64}))
        .unwrap();
    let (status, _) = server.try_connect(&format!("/ws?access_token={forged}"), &[]).await.expect_err("forged");
    assert_eq!(status, 401);
    let (status, _) = server.try_connect("/ws?access_token=garbage", &[]).await.expect_err("garbage");
    assert_eq!(status, 401);

    // on_connect may still reject an authenticated client.
    let mut banned = server.connect_to(&format!("/ws?access_token={}", token("banned"))).await;
    assert_eq!(recv(&mut banned).await["code"], "permission_denied");
    assert_eq!(closed(&mut banned, Duration::from_secs(5)).await, Some(1008));
}

#[tokio::test]
async fn require_auth_without_any_jwt_configuration_is_a_start_up_error() {
    let hub = microframework_ws::Hub::new();
    let service = microframework::Service::new("ws-it").component(hub.component()).router({
        let hub = hub.clone();
        move |ctx| microframework_ws::router(hub, crate::common::Chat::default(), ctx, None)
    });
    let Err(err) =
        microframework_testing::TestApp::builder(service).yaml("websocket:\n  require_auth: true\n").try_spawn().await
    else {
        panic!("the service must not start");
    };
    let text = err.to_string();
    assert!(text.contains("websocket.require_auth") && text.contains("auth.jwt"), "{text}");
}

#[tokio::test]
async fn tokens_are_optional_without_require_auth_and_a_given_verifier_is_used() {
    let cfg = JwtConfig { secret: Some(SECRET.into()), ..JwtConfig::default() };
    let verifier = JwtVerifier::from_config(&cfg).await.unwrap();
    let server = Server::start_with("", Some(verifier)).await;
    let mut anon = server.connect().await;
    assert_eq!(whoami(&mut anon).await, "anonymous");
    let mut carol = server.connect_to(&format!("/ws?access_token={}", token("carol"))).await;
    assert_eq!(whoami(&mut carol).await, "carol");
    let (status, _) = server.try_connect("/ws?access_token=garbage", &[]).await.expect_err("garbage");
    assert_eq!(status, 401, "a presented token must be valid");

    // Without any verifier, a query token cannot be checked and is refused.
    let server = Server::start("").await;
    let (status, _) =
        server.try_connect(&format!("/ws?access_token={}", token("dave")), &[]).await.expect_err("unverifiable");
    assert_eq!(status, 401);
}

//! Verification with keys from a JWKS endpoint served by a local axum server.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use microframework_auth::{AuthError, JwtConfig, JwtSigner, JwtVerifier};
use serde_json::json;

use crate::support::*;

fn standard_set() -> serde_json::Value {
    jwks(vec![
        jwk("rsa_public.pem", "rsa-1", Some(Algorithm::RS256)),
        jwk("ec_public.pem", "ec-1", Some(Algorithm::ES256)),
    ])
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_against_the_jwks() {
    let server = JwksServer::start(standard_set()).await;
    let v = JwtVerifier::from_config(&jwks_config(&server.url())).await.unwrap();
    assert!(v.is_ready());
    assert_eq!(server.hits(), 1);

    let rs = rsa_signer().with_kid("rsa-1").sign(&claims()).unwrap();
    let es = ec_signer().with_kid("ec-1").sign(&claims()).unwrap();
    for _ in 0..3 {
        assert_eq!(v.verify(&rs).await.unwrap().subject(), Some("user-1"));
        assert_eq!(v.verify(&es).await.unwrap().subject(), Some("user-1"));
    }
    // Keys are cached: no further fetch.
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn token_without_kid_tries_the_matching_keys() {
    let server = JwksServer::start(jwks(vec![
        jwk("rsa2_public.pem", "other", Some(Algorithm::RS256)),
        jwk("ec_public.pem", "ec-1", Some(Algorithm::ES256)),
        jwk("rsa_public.pem", "rsa-1", Some(Algorithm::RS256)),
    ]))
    .await;
    let v = JwtVerifier::from_config(&jwks_config(&server.url())).await.unwrap();
    let rs = rsa_signer().sign(&claims()).unwrap();
    assert_eq!(v.verify(&rs).await.unwrap().subject(), Some("user-1"));
    let es = ec_signer().sign(&claims()).unwrap();
    assert!(v.verify(&es).await.is_ok());
    // No key in the set signed this one.
    let server2 = JwksServer::start(jwks(vec![jwk("rsa2_public.pem", "other", Some(Algorithm::RS256))])).await;
    let v2 = JwtVerifier::from_config(&jwks_config(&server2.url())).await.unwrap();
    assert_eq!(v2.verify(&rs).await.unwrap_err(), AuthError::InvalidSignature);
    // No key of that family at all.
    assert_eq!(v2.verify(&es).await.unwrap_err(), AuthError::UnknownKey(None));
}

#[tokio::test]
async fn jwk_without_alg_allows_the_usual_algorithm_of_its_type() {
    let server = JwksServer::start(jwks(vec![jwk("rsa_public.pem", "rsa-1", None)])).await;
    let v = JwtVerifier::from_config(&jwks_config(&server.url())).await.unwrap();
    let rs = rsa_signer().with_kid("rsa-1").sign(&claims()).unwrap();
    assert!(v.verify(&rs).await.is_ok());
    let ps =
        JwtSigner::from_pem("PS256", &fixture("rsa_private.pem")).unwrap().with_kid("rsa-1").sign(&claims()).unwrap();
    assert_eq!(v.verify(&ps).await.unwrap_err(), AuthError::AlgorithmNotAllowed("PS256".into()));
}

#[tokio::test]
async fn jwk_declared_alg_is_allowed_and_enforced() {
    let server = JwksServer::start(jwks(vec![jwk("rsa_public.pem", "ps", Some(Algorithm::PS256))])).await;
    let v = JwtVerifier::from_config(&jwks_config(&server.url())).await.unwrap();
    let ps = JwtSigner::from_pem("PS256", &fixture("rsa_private.pem")).unwrap().with_kid("ps").sign(&claims()).unwrap();
    assert!(v.verify(&ps).await.is_ok());
    // Same key, but the token claims RS256: the key declares PS256 only.
    let rs = rsa_signer().with_kid("ps").sign(&claims()).unwrap();
    assert_eq!(v.verify(&rs).await.unwrap_err(), AuthError::AlgorithmNotAllowed("RS256".into()));
}

#[tokio::test]
async fn kid_of_another_key_type_is_rejected() {
    let server = JwksServer::start(standard_set()).await;
    let v = JwtVerifier::from_config(&jwks_config(&server.url())).await.unwrap();
    // An ES256 token naming the RSA key.
    let es = ec_signer().with_kid("rsa-1").sign(&claims()).unwrap();
    assert_eq!(v.verify(&es).await.unwrap_err(), AuthError::AlgorithmNotAllowed("ES256".into()));
}

#[tokio::test]
async fn hmac_tokens_are_never_accepted_with_a_jwks() {
    let server = JwksServer::start(standard_set()).await;
    let v = JwtVerifier::from_config(&jwks_config(&server.url())).await.unwrap();
    // Algorithm confusion through the JWKS: HMAC keyed with the RSA public key PEM.
    let hs = JwtSigner::hs256(&fixture("rsa_public.pem")).with_kid("rsa-1").sign(&claims()).unwrap();
    assert_eq!(v.verify(&hs).await.unwrap_err(), AuthError::AlgorithmNotAllowed("HS256".into()));
    let none = format!("{}.{}.", b64(br#"{"alg":"none","kid":"rsa-1"}"#), b64(claims().to_string().as_bytes()));
    assert_eq!(v.verify(&none).await.unwrap_err(), AuthError::AlgorithmNotAllowed("none".into()));
}

#[tokio::test]
async fn configured_algorithms_restrict_the_jwks() {
    let server = JwksServer::start(standard_set()).await;
    let cfg = JwtConfig { algorithms: vec!["ES256".into()], ..jwks_config(&server.url()) };
    let v = JwtVerifier::from_config(&cfg).await.unwrap();
    let rs = rsa_signer().with_kid("rsa-1").sign(&claims()).unwrap();
    assert_eq!(v.verify(&rs).await.unwrap_err(), AuthError::AlgorithmNotAllowed("RS256".into()));
    let es = ec_signer().with_kid("ec-1").sign(&claims()).unwrap();
    assert!(v.verify(&es).await.is_ok());
}

#[tokio::test]
async fn forged_token_with_a_known_kid_is_rejected() {
    let server = JwksServer::start(standard_set()).await;
    let v = JwtVerifier::from_config(&jwks_config(&server.url())).await.unwrap();
    let forged = rsa2_signer().with_kid("rsa-1").sign(&claims()).unwrap();
    assert_eq!(v.verify(&forged).await.unwrap_err(), AuthError::InvalidSignature);
    // A bad signature does not trigger a refetch.
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn claims_checks_apply_to_jwks_tokens() {
    let server = JwksServer::start(standard_set()).await;
    let cfg = JwtConfig { issuer: Some("idp".into()), audience: vec!["api".into()], ..jwks_config(&server.url()) };
    let v = JwtVerifier::from_config(&cfg).await.unwrap();
    let signer = rsa_signer().with_kid("rsa-1");
    let ok = signer.sign(&claims_with(json!({"iss": "idp", "aud": "api"}))).unwrap();
    assert!(v.verify(&ok).await.is_ok());
    let bad_iss = signer.sign(&claims_with(json!({"iss": "x", "aud": "api"}))).unwrap();
    assert_eq!(v.verify(&bad_iss).await.unwrap_err(), AuthError::InvalidIssuer);
    let bad_aud = signer.sign(&claims_with(json!({"iss": "idp", "aud": "x"}))).unwrap();
    assert_eq!(v.verify(&bad_aud).await.unwrap_err(), AuthError::InvalidAudience);
    let expired = signer.sign(&claims_with(json!({"iss": "idp", "aud": "api", "exp": now() - 3600}))).unwrap();
    assert_eq!(v.verify(&expired).await.unwrap_err(), AuthError::Expired);
}

#[tokio::test]
async fn key_rotation_is_picked_up_by_the_on_demand_refetch() {
    let server = JwksServer::start(jwks(vec![jwk("rsa_public.pem", "k1", Some(Algorithm::RS256))])).await;
    let v = JwtVerifier::from_config(&jwks_config(&server.url())).await.unwrap();
    let old = rsa_signer().with_kid("k1").sign(&claims()).unwrap();
    assert!(v.verify(&old).await.is_ok());
    assert_eq!(server.hits(), 1);

    // The identity provider rotates to a new key.
    server.set(jwks(vec![jwk("rsa2_public.pem", "k2", Some(Algorithm::RS256))]));
    let new = rsa2_signer().with_kid("k2").sign(&claims()).unwrap();
    assert_eq!(v.verify(&new).await.unwrap().subject(), Some("user-1"));
    assert_eq!(server.hits(), 2);
    // The old key is gone from the set, and the refetch budget is spent.
    assert_eq!(v.verify(&old).await.unwrap_err(), AuthError::UnknownKey(Some("k1".into())));
    assert_eq!(server.hits(), 2);
    // Cached from now on.
    assert!(v.verify(&new).await.is_ok());
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let server = JwksServer::start(standard_set()).await;
    let v = JwtVerifier::from_config(&jwks_config(&server.url())).await.unwrap();
    assert_eq!(server.hits(), 1);
    let signer = rsa_signer();

    // Sequential garbage kids.
    for i in 0..20 {
        let token = signer.clone().with_kid(format!("garbage-{i}")).sign(&claims()).unwrap();
        assert_eq!(v.verify(&token).await.unwrap_err(), AuthError::UnknownKey(Some(format!("garbage-{i}"))));
    }
    // Concurrent garbage kids.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let v = v.clone();
        let token = signer.clone().with_kid(format!("concurrent-{i}")).sign(&claims()).unwrap();
        tasks.spawn(async move { v.verify(&token).await });
    }
    while let Some(res) = tasks.join_next().await {
        assert!(matches!(res.unwrap(), Err(AuthError::UnknownKey(Some(_)))));
    }
    assert_eq!(server.hits(), 2, "one start-up fetch plus one on-demand refetch");
    // Known kids still verify.
    assert!(v.verify(&signer.clone().with_kid("rsa-1").sign(&claims()).unwrap()).await.is_ok());
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_fetch() {
    let server = JwksServer::start(standard_set()).await;
    let v = JwtVerifier::from_config(&jwks_config(&server.url())).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let v = v.clone();
        let token = rsa_signer().with_kid(format!("c-{i}")).sign(&claims()).unwrap();
        tasks.spawn(async move { v.verify(&token).await });
    }
    while let Some(res) = tasks.join_next().await {
        assert!(matches!(res.unwrap(), Err(AuthError::UnknownKey(Some(_)))));
    }
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn jwks_down_at_start_then_up() {
    // Reserve a port, then free it so that nothing listens there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/jwks");

    let v = JwtVerifier::from_config(&jwks_config(&url)).await.expect("an unreachable JWKS must not fail start-up");
    assert!(!v.is_ready());
    let token = rsa_signer().with_kid("rsa-1").sign(&claims()).unwrap();
    let err = v.verify(&token).await.unwrap_err();
    assert!(matches!(err, AuthError::KeysUnavailable(_)), "{err:?}");
    assert_eq!(err.to_problem().status, 503);
    assert!(matches!(v.refresh().await, Err(AuthError::KeysUnavailable(_))));

    // The identity provider comes up on that address.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let server = JwksServer::start_on(listener, standard_set());
    // Still rate-limited for on-demand fetches: the explicit refresh loads the keys.
    v.refresh().await.unwrap();
    assert!(v.is_ready());
    assert_eq!(v.verify(&token).await.unwrap().subject(), Some("user-1"));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn verify_loads_missing_keys_on_demand() {
    let server = JwksServer::start(standard_set()).await;
    server.set_up(false);
    let v = JwtVerifier::from_config(&jwks_config(&server.url())).await.unwrap();
    assert!(!v.is_ready());
    server.set_up(true);
    // Unrelated to the start-up failure: the first on-demand fetch is allowed.
    let token = rsa_signer().with_kid("rsa-1").sign(&claims()).unwrap();
    assert!(v.verify(&token).await.is_ok());
    assert!(v.is_ready());
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn refresh_failures_keep_the_old_keys() {
    let server = JwksServer::start(standard_set()).await;
    let v = JwtVerifier::from_config(&jwks_config(&server.url())).await.unwrap();
    let token = rsa_signer().with_kid("rsa-1").sign(&claims()).unwrap();

    server.set_up(false);
    assert!(matches!(v.refresh().await, Err(AuthError::KeysUnavailable(_))));
    assert!(v.is_ready());
    assert!(v.verify(&token).await.is_ok());

    // A garbage document or an empty set also keeps the old keys.
    server.set_up(true);
    server.set(json!({"nope": true}));
    assert!(v.refresh().await.is_err());
    server.set(jwks(vec![]));
    assert!(v.refresh().await.is_err());
    assert!(v.verify(&token).await.is_ok());
}

#[tokio::test]
async fn invalid_jwks_at_start_is_not_ready() {
    let server = JwksServer::start(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]})).await;
    let v = JwtVerifier::from_config(&jwks_config(&server.url())).await.unwrap();
    assert!(!v.is_ready());
}

// Paused time: the 300 ms timeout elapses in the runtime's clock as soon as nothing else can
// run, so the test measures that clock, not the machine's load.
#[tokio::test(start_paused = true)]
async fn slow_jwks_times_out() {
    // Accepts connections but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            conns.push(c);
        }
    });
    let cfg = JwtConfig { jwks_timeout: Duration::from_millis(300), ..jwks_config(&format!("http://{addr}/jwks")) };
    let started = tokio::time::Instant::now();
    let v = JwtVerifier::from_config(&cfg).await.unwrap();
    // The fetch gave up at its timeout: start-up is not held by a server that never answers.
    let waited = started.elapsed();
    assert!((Duration::from_millis(300)..Duration::from_secs(1)).contains(&waited), "{waited:?}");
    assert!(!v.is_ready());
    hold.abort();
}

#[tokio::test]
async fn background_refresh_runs_and_stops_when_dropped() {
    let server = JwksServer::start(jwks(vec![jwk("rsa_public.pem", "k1", Some(Algorithm::RS256))])).await;
    let cfg = JwtConfig { jwks_refresh_interval: Duration::from_secs(1), ..jwks_config(&server.url()) };
    let v = JwtVerifier::from_config(&cfg).await.unwrap();
    assert_eq!(server.hits(), 1);
    server.set(jwks(vec![jwk("rsa2_public.pem", "k2", Some(Algorithm::RS256))]));

    // Wait for the background refresh (no verify call in between).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.hits() < 2 {
        assert!(std::time::Instant::now() < deadline, "the background refresh did not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let token = rsa2_signer().with_kid("k2").sign(&claims()).unwrap();
    assert!(v.verify(&token).await.is_ok());

    // Clones share the task; dropping the last one stops it.
    let clone = v.clone();
    drop(v);
    let before = server.hits();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.hits() <= before {
        assert!(std::time::Instant::now() < deadline, "the task must keep running while a clone is alive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(clone);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after_drop = server.hits();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(server.hits(), after_drop, "the refresh task kept running after the verifier was dropped");
}

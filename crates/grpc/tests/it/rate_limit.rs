//! Rate limiting of calls with the HTTP layer's token buckets (`http.rate_limit`).

use std::time::Duration;

use microframework_auth::{JwtConfig, JwtSigner, JwtVerifier};
use microframework_core::Config;
use microframework_grpc::ClientInterceptor;
use microframework_grpc::tonic_health::pb::HealthCheckRequest;
use microframework_grpc::tonic_health::pb::health_client::HealthClient;
use microframework_grpc::tonic_types::StatusExt;
use microframework_http::config::RateLimitConfig;
use microframework_http::middleware::RateLimiter;
use tonic::Code;

use crate::pb::CountRequest;
use crate::pb::echo_client::EchoClient;
use crate::{TestServer, echo_builder, say};

/// Calls `Say` on `client` until a call is refused; returns how many went through first and the
/// refusal. The buckets refill once a second, so a slow machine may get a call or two more
/// through than the burst, never fewer.
async fn until_refused<T>(client: &mut EchoClient<T>) -> (usize, tonic::Status)
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    for passed in 0..50 {
        if let Err(status) = client.say(say("again")).await {
            return (passed, status);
        }
    }
    panic!("50 calls in a row went through a limit of one per second");
}

const SECRET: &str = "a test secret of at least thirty-two bytes";

/// A limiter of `yaml` (the `rate_limit` section of `http`).
fn limiter(yaml: &str) -> RateLimiter {
    let cfg: RateLimitConfig = Config::from_yaml(yaml).unwrap().section("http.rate_limit").unwrap();
    RateLimiter::new(&cfg, Vec::new(), Default::default())
}

async fn server(limiter: RateLimiter) -> TestServer {
    let cfg = JwtConfig { secret: Some(SECRET.into()), ..JwtConfig::default() };
    let verifier = JwtVerifier::from_config(&cfg).await.unwrap();
    let subjects = limiter.clone();
    let builder = echo_builder()
        .jwt(verifier, cfg)
        .rate_limit_per_client(move |req| limiter.check_client(req))
        .rate_limit_per_subject(move |req| subjects.check_subject(req));
    TestServer::start("grpc:\n  port: 0\n", builder).await
}

#[tokio::test]
async fn calls_over_the_limit_get_resource_exhausted_with_retry_info() {
    let yaml = "http:\n  rate_limit:\n    enabled: true\n    per_ip: { requests_per_second: 1, burst: 2 }\n";
    let server = server(limiter(yaml)).await;
    let mut client = server.client().await;
    client.say(say("one")).await.unwrap();
    // A stream counts once, when it opens.
    let mut stream = client.count(CountRequest { count: 3, interval_ms: 1 }).await.unwrap().into_inner();
    let mut received = 0;
    while stream.message().await.unwrap().is_some() {
        received += 1;
    }
    assert_eq!(received, 3);

    let (_, status) = until_refused(&mut client).await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(status.message(), "Rate limit exceeded; retry in 1 second.");
    let details = status.get_error_details();
    let wait = details.retry_info().and_then(|r| r.retry_delay).expect("a RetryInfo detail");
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
    assert_eq!(details.error_info().map(|e| e.reason.as_str()), Some("too_many_requests"));
    assert!(details.request_info().is_some_and(|r| !r.request_id.is_empty()));

    // Health is never limited, and the server keeps serving.
    let mut health = HealthClient::new(server.channel().await);
    for _ in 0..5 {
        health.check(HealthCheckRequest { service: String::new() }).await.unwrap();
    }
    // Once the bucket refills, calls go through again.
    tokio::time::sleep(wait).await;
    client.say(say("again")).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn authenticated_calls_also_use_their_subjects_bucket() {
    let yaml = "http:\n  rate_limit:\n    enabled: true\n    per_ip: { requests_per_second: 1, burst: 8 }\n    \
                per_subject: { requests_per_second: 1, burst: 2 }\n";
    let server = server(limiter(yaml)).await;
    let channel = server.channel().await;
    let token = |sub: &str| {
        JwtSigner::hs256(SECRET.as_bytes()).sign(&serde_json::json!({"sub": sub, "exp": 4_000_000_000u64})).unwrap()
    };
    let mut alice =
        EchoClient::with_interceptor(channel.clone(), ClientInterceptor::new().bearer_token(&token("alice")).unwrap());
    // Alice's own bucket (burst 2) runs out well before the address's (burst 8)...
    let (passed, status) = until_refused(&mut alice).await;
    assert!((2..6).contains(&passed), "{passed}");
    assert_eq!(status.code(), Code::ResourceExhausted);
    // ... so Bob, from the same address, still gets through.
    let mut bob = EchoClient::with_interceptor(channel, ClientInterceptor::new().bearer_token(&token("bob")).unwrap());
    assert_eq!(bob.say(say("b1")).await.unwrap().into_inner().subject, "bob");
    server.stop().await;
}

#[tokio::test]
async fn a_flood_of_forged_tokens_is_limited_before_any_signature_check() {
    let yaml = "http:\n  rate_limit:\n    enabled: true\n    per_ip: { requests_per_second: 1, burst: 3 }\n";
    let server = server(limiter(yaml)).await;
    let forged = JwtSigner::hs256(b"not the server's secret, but long enough")
        .sign(&serde_json::json!({"sub": "mallory", "exp": 4_000_000_000u64}))
        .unwrap();
    let mut client =
        EchoClient::with_interceptor(server.channel().await, ClientInterceptor::new().bearer_token(&forged).unwrap());
    let mut unauthenticated = 0;
    let refused = loop {
        let status = client.say(say("let me in")).await.unwrap_err();
        if status.code() != Code::Unauthenticated {
            break status;
        }
        unauthenticated += 1;
        assert!(unauthenticated < 50, "50 forged tokens in a row were checked against a limit of one per second");
    };
    assert!(unauthenticated >= 3, "{unauthenticated}");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    server.stop().await;
}

#[tokio::test]
async fn exempt_paths_and_a_switched_off_limiter_let_every_call_through() {
    let yaml = "http:\n  rate_limit:\n    enabled: true\n    per_ip: { requests_per_second: 1, burst: 1 }\n    \
                exempt_paths: [\"/echo.v1.Echo/Count\"]\n";
    let limiter = limiter(yaml);
    let server = server(limiter.clone()).await;
    let mut client = server.client().await;
    assert_eq!(until_refused(&mut client).await.1.code(), Code::ResourceExhausted);
    for _ in 0..3 {
        client.count(CountRequest { count: 1, interval_ms: 0 }).await.unwrap();
    }
    // A reload that switches the limiter off applies at once.
    limiter.update(&RateLimitConfig::default());
    for _ in 0..5 {
        client.say(say("free")).await.unwrap();
    }
    server.stop().await;
}

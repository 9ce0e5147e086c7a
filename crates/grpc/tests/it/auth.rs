//! JWT authentication of calls.

use microframework_auth::{JwtConfig, JwtSigner, JwtVerifier};
use microframework_grpc::ClientInterceptor;
use microframework_grpc::tonic_health::pb::HealthCheckRequest;
use microframework_grpc::tonic_health::pb::health_client::HealthClient;
use microframework_grpc::tonic_types::StatusExt;
use tonic::Code;

use crate::pb::CountRequest;
use crate::pb::echo_client::EchoClient;
use crate::{TestServer, echo_builder, frame, raw_call, say};

const SECRET: &str = "a test secret of at least thirty-two bytes";

fn token(claims: serde_json::Value) -> String {
    JwtSigner::hs256(SECRET.as_bytes()).sign(&claims).unwrap()
}

fn valid_token() -> String {
    token(serde_json::json!({"sub": "user-42", "exp": 4_000_000_000u64, "roles": ["admin"]}))
}

async fn server(required: bool) -> TestServer {
    let cfg = JwtConfig {
        secret: Some(SECRET.into()),
        required,
        public_paths: vec!["/echo.v1.Echo/Count".into()],
        ..JwtConfig::default()
    };
    let verifier = JwtVerifier::from_config(&cfg).await.unwrap();
    TestServer::start("grpc:\n  port: 0\n", echo_builder().jwt(verifier, cfg)).await
}

#[tokio::test]
async fn valid_tokens_reach_the_handler_with_their_claims() {
    let server = server(false).await;
    let channel = server.channel().await;

    let interceptor = ClientInterceptor::new().bearer_token(&valid_token()).unwrap();
    let mut client = EchoClient::with_interceptor(channel.clone(), interceptor);
    assert_eq!(client.say(say("hi")).await.unwrap().into_inner().subject, "user-42");

    // Without a token, calls pass through (auth is not required) without claims.
    let mut anonymous = EchoClient::new(channel.clone());
    assert_eq!(anonymous.say(say("hi")).await.unwrap().into_inner().subject, "");

    for bad in [
        "not.a.token".to_owned(),
        token(serde_json::json!({"sub": "user-42", "exp": 1_000})),
        JwtSigner::hs256(b"another secret of at least thirty-two bytes!!")
            .sign(&serde_json::json!({"sub": "x", "exp": 4_000_000_000u64}))
            .unwrap(),
    ] {
        let interceptor = ClientInterceptor::new().bearer_token(&bad).unwrap().request_id("auth-1").unwrap();
        let mut client = EchoClient::with_interceptor(channel.clone(), interceptor);
        let status = client.say(say("hi")).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{bad}: {status:?}");
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "unauthenticated");
        assert_eq!(info.metadata.get("request_id").map(String::as_str), Some("auth-1"));
    }
    server.stop().await;
}

#[tokio::test]
async fn rejections_are_trailers_only_grpc_responses() {
    let server = server(false).await;
    let body = frame(&prost::Message::encode_to_vec(&say("hi")));
    let res = raw_call(server.addr, "/echo.v1.Echo/Say", &[("authorization", "Bearer not.a.token")], body).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.headers.get("content-type").unwrap(), "application/grpc");
    assert_eq!(res.headers.get("grpc-status").unwrap(), "16", "the status is in the headers");
    let message = res.headers.get("grpc-message").unwrap().to_str().unwrap();
    assert!(message.contains("%20"), "percent-encoded: {message}");
    assert!(res.data.is_empty() && res.trailers.is_none());
    assert!(res.headers.get("x-request-id").is_some());
    server.stop().await;
}

#[tokio::test]
async fn required_tokens_except_public_paths_health_and_reflection() {
    let server = server(true).await;
    let channel = server.channel().await;

    let mut anonymous = EchoClient::new(channel.clone());
    let status = anonymous.say(say("hi")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // `/echo.v1.Echo/Count` is a public path.
    let mut stream = anonymous.count(CountRequest { count: 2, interval_ms: 0 }).await.unwrap().into_inner();
    assert_eq!(stream.message().await.unwrap().unwrap().n, 1);

    let mut health = HealthClient::new(channel.clone());
    health.check(HealthCheckRequest { service: String::new() }).await.unwrap();
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut stream = reflection.server_reflection_info(futures_util::stream::iter([req])).await.unwrap().into_inner();
    assert!(stream.message().await.unwrap().is_some());

    // A malformed authorization value is rejected.
    let mut req = tonic::Request::new(say("hi"));
    req.metadata_mut().insert("authorization", "Basic dXNlcjpwdw==".parse().unwrap());
    assert_eq!(anonymous.say(req).await.unwrap_err().code(), Code::Unauthenticated);

    let interceptor = ClientInterceptor::new().bearer_token(&valid_token()).unwrap();
    let mut client = EchoClient::with_interceptor(channel, interceptor);
    assert_eq!(client.say(say("hi")).await.unwrap().into_inner().subject, "user-42");
    server.stop().await;
}

#[tokio::test]
async fn disabled_jwt_config_ignores_tokens() {
    let cfg = JwtConfig { enabled: false, secret: Some(SECRET.into()), required: true, ..JwtConfig::default() };
    let verifier = JwtVerifier::from_config(&cfg).await.unwrap();
    let server = TestServer::start("grpc:\n  port: 0\n", echo_builder().jwt(verifier, cfg)).await;
    let channel = server.channel().await;
    assert_eq!(EchoClient::new(channel.clone()).say(say("hi")).await.unwrap().into_inner().subject, "");
    let interceptor = ClientInterceptor::new().bearer_token("not.a.token").unwrap();
    let mut client = EchoClient::with_interceptor(channel, interceptor);
    assert_eq!(client.say(say("hi")).await.unwrap().into_inner().subject, "");
    server.stop().await;
}

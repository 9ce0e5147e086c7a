//! The standard health service follows readiness.

use std::time::Duration;

use microframework_core::{HealthCheck, ServiceState};
use microframework_grpc::tonic_health::pb::HealthCheckRequest;
use microframework_grpc::tonic_health::pb::health_check_response::ServingStatus;
use microframework_grpc::tonic_health::pb::health_client::HealthClient;
use tonic::Code;
use tonic::transport::Channel;

use crate::{TestServer, echo_builder, eventually};

async fn status(client: &mut HealthClient<Channel>, service: &str) -> Result<ServingStatus, tonic::Status> {
    let res = client.check(HealthCheckRequest { service: service.to_owned() }).await?;
    Ok(res.into_inner().status())
}

async fn becomes(client: &HealthClient<Channel>, service: &str, want: ServingStatus, within: Duration) -> bool {
    eventually(within, || {
        let mut client = client.clone();
        async move { status(&mut client, service).await.is_ok_and(|s| s == want) }
    })
    .await
}

#[tokio::test]
async fn follows_readiness() {
    let server = TestServer::start("grpc:\n  port: 0\n", echo_builder()).await;
    let mut client = HealthClient::new(server.channel().await);
    let within = Duration::from_secs(5);
    assert!(becomes(&client, "", ServingStatus::Serving, within).await);
    assert_eq!(status(&mut client, "echo.v1.Echo").await.unwrap(), ServingStatus::Serving);
    let err = status(&mut client, "nope.v1.Nope").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Watch streams the changes.
    let mut watch = client.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status(), ServingStatus::Serving);

    // A failing readiness check.
    server.ctx.health().register(HealthCheck::readiness("db", || async { Err("connection refused".to_owned()) }));
    assert!(becomes(&client, "", ServingStatus::NotServing, within).await);
    assert_eq!(status(&mut client, "echo.v1.Echo").await.unwrap(), ServingStatus::NotServing);
    let next = tokio::time::timeout(within, watch.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    server.ctx.health().deregister("db");
    assert!(becomes(&client, "echo.v1.Echo", ServingStatus::Serving, within).await);

    // A state other than ready.
    server.ctx.lifecycle().set_state(ServiceState::Starting);
    assert!(becomes(&client, "", ServingStatus::NotServing, within).await);
    server.ctx.lifecycle().set_state(ServiceState::Ready);
    assert!(becomes(&client, "", ServingStatus::Serving, within).await);
    server.stop().await;
}

#[tokio::test]
async fn not_serving_as_soon_as_shutdown_is_requested() {
    let server = TestServer::start("grpc:\n  port: 0\n", echo_builder()).await;
    let mut client = HealthClient::new(server.channel().await);
    assert!(becomes(&client, "", ServingStatus::Serving, Duration::from_secs(5)).await);
    // The listener keeps serving (the server's stop is separate, as with a drain delay).
    server.ctx.lifecycle().shutdown();
    assert!(becomes(&client, "", ServingStatus::NotServing, Duration::from_millis(300)).await);
    assert_eq!(status(&mut client, "echo.v1.Echo").await.unwrap(), ServingStatus::NotServing);
    server.stop().await;
}

#[tokio::test]
async fn health_and_reflection_can_be_switched_off() {
    let server = TestServer::start("grpc:\n  port: 0\n  health: false\n  reflection: false\n", echo_builder()).await;
    assert!(server.app.health.is_none());
    let mut client = HealthClient::new(server.channel().await);
    let err = status(&mut client, "").await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    server.stop().await;

    let ctx = crate::context("grpc:\n  enabled: false\n");
    let app = echo_builder().build(&ctx).await.unwrap();
    assert!(app.health.is_none() && app.services.is_empty() && !app.config.enabled);
}

#[tokio::test]
async fn bad_builds_are_errors() {
    let ctx = crate::context("grpc:\n  port: 0\n");
    let twice = echo_builder().add_service(crate::pb::echo_server::EchoServer::new(crate::Echo));
    let err = twice.build(&ctx).await.unwrap_err();
    assert!(err.to_string().contains("`echo.v1.Echo` is added twice"), "{err}");

    let clash = echo_builder().add_service(microframework_grpc::tonic_health::server::health_reporter().1);
    let err = clash.build(&ctx).await.unwrap_err();
    assert!(err.to_string().contains("grpc.health.v1.Health"), "{err}");

    let err = echo_builder().file_descriptor_set(b"\xff\xff").build(&ctx).await.unwrap_err();
    assert!(err.to_string().contains("FileDescriptorSet"), "{err}");

    let ctx = crate::context("grpc:\n  port: 0\n  timeout: 0s\n  unknown_key: 1\n");
    let err = echo_builder().build(&ctx).await.unwrap_err();
    assert!(err.to_string().contains("unknown_key"), "{err}");
}

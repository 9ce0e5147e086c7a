//! Domain errors reach clients as gRPC codes with standard error details.

use microframework_grpc::ClientInterceptor;
use microframework_grpc::tonic_types::StatusExt;
use tonic::Code;

use crate::pb::SayRequest;
use crate::pb::echo_client::EchoClient;
use crate::{TestServer, echo_builder, say};

#[tokio::test]
async fn domain_errors_map_to_codes_with_details() {
    let server = TestServer::start("grpc:\n  port: 0\n", echo_builder()).await;
    let interceptor = ClientInterceptor::new().request_id("errors-test").unwrap();
    let mut client = EchoClient::with_interceptor(server.channel().await, interceptor);
    for (error, code, message) in [
        ("not_found", Code::NotFound, "no such echo"),
        ("conflict", Code::AlreadyExists, "already echoed"),
        ("bad_request", Code::InvalidArgument, "unknown error code `bad_request`"),
        ("validation_failed", Code::InvalidArgument, "The request did not pass validation."),
        ("permission_denied", Code::PermissionDenied, "not yours"),
        ("too_many_requests", Code::ResourceExhausted, "slow down"),
        ("unavailable", Code::Unavailable, "the echo chamber is closed"),
        ("timeout", Code::DeadlineExceeded, "the database took too long"),
        ("internal", Code::Internal, "An unexpected error occurred."),
    ] {
        let status = client.say(SayRequest { error: error.into(), ..say("x") }).await.unwrap_err();
        assert_eq!(status.code(), code, "{error}: {status:?}");
        assert_eq!(status.message(), message, "{error}");
        let info = status.get_details_error_info().expect("an ErrorInfo detail");
        let reason = if error == "bad_request" { "bad_request" } else { error };
        assert_eq!(info.reason, reason);
        assert_eq!(info.domain, "microframework.dev");
        assert_eq!(info.metadata.get("request_id").map(String::as_str), Some("errors-test"));
        assert_eq!(status.get_details_request_info().unwrap().request_id, "errors-test");
        if error == "validation_failed" {
            let bad = status.get_details_bad_request().expect("a BadRequest detail");
            let fields: Vec<_> = bad.field_violations.iter().map(|v| v.field.as_str()).collect();
            assert_eq!(fields, ["message", "delay_ms"]);
            assert_eq!(bad.field_violations[0].description, "must not be empty");
        } else {
            assert!(status.get_details_bad_request().is_none());
        }
        assert!(!format!("{status:?}").contains("disk on fire"), "internal causes are never sent");
    }
    server.stop().await;
}

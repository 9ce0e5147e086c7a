//! Deadlines, message size limits, malformed messages and the per-connection concurrency limit.

use std::time::Duration;

use prost::Message;
use tonic::Code;

use crate::pb::echo_server::EchoServer;
use crate::pb::{CountRequest, SayRequest};
use crate::{Echo, TestServer, echo_builder, eventually, frame, is_running, raw_call, say};

#[tokio::test]
async fn configured_timeout_answers_deadline_exceeded() {
    let server = TestServer::start("grpc:\n  port: 0\n  timeout: 300ms\n", echo_builder()).await;
    let mut client = server.client().await;
    // A call that would take a minute ends with DEADLINE_EXCEEDED, not with its answer.
    let status = client.say(SayRequest { delay_ms: 60_000, ..say("slow") }).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    // The server keeps serving, on the same connection.
    assert_eq!(client.say(say("fast")).await.unwrap().into_inner().message, "fast");
    server.stop().await;
}

#[tokio::test]
async fn client_deadlines_are_honoured() {
    // The configured timeout is long; the client's `grpc-timeout` is shorter and wins.
    let server = TestServer::start("grpc:\n  port: 0\n  timeout: 30s\n", echo_builder()).await;
    let body = frame(&SayRequest { delay_ms: 60_000, ..say("slow") }.encode_to_vec());
    let res = raw_call(server.addr, "/echo.v1.Echo/Say", &[("grpc-timeout", "200m")], body).await;
    assert_eq!(res.grpc_status(), Some(Code::DeadlineExceeded as i32), "{res:?}");
    assert_eq!(res.grpc_message(), "Deadline%20exceeded");

    // A streaming response is ended by its deadline (the client sets it; tonic clients only
    // enforce it until the response headers arrive).
    let mut client = server.client().await;
    let mut req = tonic::Request::new(CountRequest { count: 100, interval_ms: 100 });
    req.set_timeout(Duration::from_millis(450));
    let mut stream = client.count(req).await.unwrap().into_inner();
    let mut received = 0;
    let status = loop {
        match stream.message().await {
            Ok(Some(_)) => received += 1,
            Ok(None) => panic!("the stream ended without an error"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!((1..10).contains(&received), "{received} messages before the deadline");
    assert_eq!(client.say(say("after")).await.unwrap().into_inner().message, "after");
    server.stop().await;
}

#[tokio::test]
async fn message_size_limits() {
    let yaml = "grpc:\n  port: 0\n  max_decoding_message_size: 1KiB\n  max_encoding_message_size: 1KiB\n";
    let server = TestServer::start(yaml, echo_builder()).await;
    let mut client = server.client().await;
    let status = client.say(SayRequest { padding: vec![1; 2048], ..say("big") }).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    let status = client.say(SayRequest { reply_padding: 2048, ..say("big reply") }).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("encoded message length too large"), "{status:?}");
    // Below the limits.
    let reply = client.say(SayRequest { padding: vec![1; 512], reply_padding: 512, ..say("ok") }).await.unwrap();
    assert_eq!(reply.into_inner().padding.len(), 512);
    server.stop().await;

    // A service added without `with_limits!` (tonic's own default is 4MiB) still gets the
    // configured request limit from the interceptor stack.
    let builder = microframework_grpc::GrpcBuilder::new().add_service(EchoServer::new(Echo));
    let server = TestServer::start(yaml, builder).await;
    let mut client = server.client().await;
    let status = client.say(SayRequest { padding: vec![1; 2048], ..say("big") }).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("the limit is: 1024 bytes"), "{status:?}");
    // ... and the configured response limit (tonic's own default is unlimited).
    let status = client.say(SayRequest { reply_padding: 2048, ..say("big reply") }).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("the limit is: 1024 bytes"), "{status:?}");
    assert!(client.say(say("small")).await.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn a_request_limit_above_tonics_own_needs_a_configured_server() {
    let yaml = "grpc:\n  port: 0\n  max_decoding_message_size: 16MiB\n";
    let builder = microframework_grpc::GrpcBuilder::new().add_service(EchoServer::new(Echo));
    let err = builder.build(&crate::context(yaml)).await.unwrap_err().to_string();
    assert!(err.contains("echo.v1.Echo") && err.contains("add_service_with"), "{err}");
    // Built with the configured limits, the larger request goes through.
    let server = TestServer::start(yaml, echo_builder()).await;
    let mut client = server.client().await;
    let reply = client.say(SayRequest { padding: vec![1; 6 * 1024 * 1024], ..say("big") }).await.unwrap();
    assert_eq!(reply.into_inner().message, "big");
    server.stop().await;
}

#[tokio::test]
async fn malformed_messages_fail_the_call_not_the_server() {
    let server = TestServer::start("grpc:\n  port: 0\n", echo_builder()).await;
    let bad_protobuf = frame(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    let res = raw_call(server.addr, "/echo.v1.Echo/Say", &[], bad_protobuf).await;
    assert_eq!(res.status, 200);
    let code = res.grpc_status().unwrap();
    assert!([Code::Internal as i32, Code::InvalidArgument as i32].contains(&code), "{res:?}");

    // A frame announcing more bytes than sent.
    let mut truncated = frame(&say("hello").encode_to_vec());
    truncated[4] += 10;
    let res = raw_call(server.addr, "/echo.v1.Echo/Say", &[], truncated).await;
    assert_eq!(res.grpc_status(), Some(Code::Internal as i32), "{res:?}");

    // An invalid compression flag.
    let mut flagged = frame(&say("hello").encode_to_vec());
    flagged[0] = 7;
    let res = raw_call(server.addr, "/echo.v1.Echo/Say", &[], flagged).await;
    assert_eq!(res.grpc_status(), Some(Code::Internal as i32), "{res:?}");

    // A frame announcing 4 GiB: rejected from its prefix.
    let res = raw_call(server.addr, "/echo.v1.Echo/Sum", &[], vec![0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
    assert_eq!(res.grpc_status(), Some(Code::OutOfRange as i32), "{res:?}");

    let mut client = server.client().await;
    assert_eq!(client.say(say("still here")).await.unwrap().into_inner().message, "still here");
    server.stop().await;
}

#[tokio::test]
async fn concurrency_limit_per_connection() {
    let server = TestServer::start("grpc:\n  port: 0\n  concurrency_limit_per_connection: 1\n", echo_builder()).await;
    let client = server.client().await;
    let (tx, mut order) = tokio::sync::mpsc::unbounded_channel();
    let call = |mut client: crate::pb::echo_client::EchoClient<_>, name: &'static str, delay_ms: u32| {
        let tx = tx.clone();
        async move {
            client.say(SayRequest { delay_ms, ..say(name) }).await.unwrap();
            tx.send(name).unwrap();
        }
    };
    // On one connection, a quick call sent while a slow one runs waits for its slot: it answers
    // second.
    let slow = tokio::spawn(call(client.clone(), "limit-slow-1", 300));
    assert!(eventually(Duration::from_secs(10), || async { is_running("limit-slow-1") }).await);
    let quick = tokio::spawn(call(client.clone(), "limit-quick", 0));
    slow.await.unwrap();
    quick.await.unwrap();
    assert_eq!([order.recv().await.unwrap(), order.recv().await.unwrap()], ["limit-slow-1", "limit-quick"]);

    // Another connection has its own slot: its quick call answers while the slow one runs.
    let other = server.client().await;
    let slow = tokio::spawn(call(client.clone(), "limit-slow-2", 60_000));
    assert!(eventually(Duration::from_secs(10), || async { is_running("limit-slow-2") }).await);
    call(other, "limit-other", 0).await;
    assert_eq!(order.recv().await.unwrap(), "limit-other");
    assert!(!slow.is_finished());
    slow.abort();
    server.stop().await;
}

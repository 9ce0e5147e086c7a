//! Every kind of method through the whole stack, request ids, and a REST router on the same port.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use microframework_grpc::ClientInterceptor;
use tonic::Code;

use crate::pb::echo_client::EchoClient;
use crate::pb::{ChatMessage, CountRequest, SumRequest};
use crate::{TestServer, echo_builder, raw_request, say};

#[tokio::test]
async fn unary_server_client_and_bidi_streaming() {
    let server = TestServer::start("grpc:\n  port: 0\n", echo_builder()).await;
    let mut client = server.client().await;

    let res = client.say(say("hello")).await.unwrap();
    let id = res.metadata().get("x-request-id").unwrap().to_str().unwrap().to_owned();
    let reply = res.into_inner();
    assert_eq!(reply.message, "hello");
    assert_eq!(reply.request_id, id, "the handler sees the id echoed in the response metadata");
    assert_eq!(id.len(), 36, "a generated UUID: {id}");
    assert_eq!(reply.subject, "", "no token, no claims");

    let mut stream = client.count(CountRequest { count: 5, interval_ms: 10 }).await.unwrap().into_inner();
    let mut got = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        got.push(item.n);
    }
    assert_eq!(got, [1, 2, 3, 4, 5]);

    let numbers = futures_util::stream::iter((1..=10).map(|n| SumRequest { n }));
    let sum = client.sum(numbers).await.unwrap().into_inner();
    assert_eq!((sum.total, sum.count), (55, 10));

    // Bidirectional: each message is answered before the next is sent.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ChatMessage>(4);
    let outbound = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    tx.send(ChatMessage { text: "a".into() }).await.unwrap();
    let mut inbound = client.chat(outbound).await.unwrap().into_inner();
    assert_eq!(inbound.message().await.unwrap().unwrap().text, "echo: a");
    tx.send(ChatMessage { text: "b".into() }).await.unwrap();
    assert_eq!(inbound.message().await.unwrap().unwrap().text, "echo: b");
    drop(tx);
    assert!(inbound.message().await.unwrap().is_none(), "the stream ends when the client's ends");

    // An unknown method of a known service, and an unknown service.
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<crate::pb::SayRequest, crate::pb::SayReply>::default();
    let path = http::uri::PathAndQuery::from_static("/echo.v1.Echo/Shout");
    let err = grpc.unary(tonic::Request::new(say("x")), path, codec).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    let codec = tonic_prost::ProstCodec::<crate::pb::SayRequest, crate::pb::SayReply>::default();
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/nope.v1.Nope/Say");
    let err = grpc.unary(tonic::Request::new(say("x")), path, codec).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);

    server.stop().await;
}

#[tokio::test]
async fn request_ids_are_accepted_when_well_formed() {
    let server = TestServer::start("grpc:\n  port: 0\n", echo_builder()).await;
    let channel = server.channel().await;

    let interceptor = ClientInterceptor::new().request_id("client-id:42").unwrap();
    let mut client = EchoClient::with_interceptor(channel.clone(), interceptor);
    let res = client.say(say("hi")).await.unwrap();
    assert_eq!(res.metadata().get("x-request-id").unwrap(), "client-id:42");
    assert_eq!(res.into_inner().request_id, "client-id:42");

    let mut client = EchoClient::new(channel);
    let mut req = tonic::Request::new(say("hi"));
    req.metadata_mut().insert("x-request-id", "not ok!".parse().unwrap());
    let res = client.say(req).await.unwrap();
    let echoed = res.metadata().get("x-request-id").unwrap().to_str().unwrap().to_owned();
    assert_ne!(echoed, "not ok!");
    assert_eq!(res.into_inner().request_id, echoed);

    // Errors carry the id in their metadata too.
    let mut req = tonic::Request::new(crate::pb::SayRequest { error: "not_found".into(), ..say("x") });
    req.metadata_mut().insert("x-request-id", "err-1".parse().unwrap());
    let status = client.say(req).await.unwrap_err();
    assert_eq!(status.metadata().get("x-request-id").unwrap(), "err-1");
    server.stop().await;
}

#[tokio::test]
async fn shares_a_port_with_a_rest_router() {
    use axum::routing::get;
    let ctx = crate::context("grpc:\n  port: 0\n");
    let app = echo_builder().build(&ctx).await.unwrap();
    // A REST router with its own middleware, as the facade builds it.
    let rest = axum::Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(axum::middleware::map_response(add_rest_header));
    let clash = axum::Router::new().route("/echo.v1.Echo/{*rest}", get(|| async { "no" }));
    assert!(app.merge_rest(clash).unwrap_err().to_string().contains("clash"));
    let server = TestServer::serve(ctx, app, move |app| app.merge_rest(rest).unwrap()).await;

    let mut client = server.client().await;
    let res = client.say(say("both")).await.unwrap();
    assert!(res.metadata().get("x-rest").is_none(), "REST middleware does not wrap gRPC calls");
    assert_eq!(res.into_inner().message, "both");

    let get =
        |path: &str| http::Request::get(format!("http://{}{path}", server.addr)).body(Full::new(Bytes::new())).unwrap();
    let res = raw_request(server.addr, get("/hello")).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.data, "hello");
    assert_eq!(res.headers.get("x-rest").unwrap(), "1");
    assert!(res.headers.get("x-request-id").is_none(), "gRPC middleware does not wrap REST routes");
    let res = raw_request(server.addr, get("/missing")).await;
    assert_eq!(res.status, 404, "the REST fallback answers unknown paths");
    assert_eq!(res.headers.get("x-rest").unwrap(), "1");

    // An unknown gRPC service reaches the REST fallback, which gRPC clients read as UNIMPLEMENTED.
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<crate::pb::SayRequest, crate::pb::SayReply>::default();
    let path = http::uri::PathAndQuery::from_static("/nope.v1.Nope/Say");
    let err = grpc.unary(tonic::Request::new(say("x")), path, codec).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    server.stop().await;
}

/// Adds `x-rest: 1` to responses, standing for the REST middleware stack.
async fn add_rest_header(mut res: axum::response::Response) -> axum::response::Response {
    res.headers_mut().insert("x-rest", http::HeaderValue::from_static("1"));
    res
}

#[tokio::test]
async fn a_slow_call_does_not_block_others() {
    let server = TestServer::start("grpc:\n  port: 0\n", echo_builder()).await;
    let mut slow = server.client().await;
    let mut fast = slow.clone();
    // Slower than any test run: it is still running when the fast call, on the same connection,
    // has its answer.
    let slow =
        tokio::spawn(async move { slow.say(crate::pb::SayRequest { delay_ms: 60_000, ..say("calls-slow") }).await });
    assert!(crate::eventually(Duration::from_secs(10), || async { crate::is_running("calls-slow") }).await);
    assert_eq!(fast.say(say("fast")).await.unwrap().into_inner().message, "fast");
    assert!(!slow.is_finished(), "the slow call is still running");
    slow.abort();
    server.stop().await;
}

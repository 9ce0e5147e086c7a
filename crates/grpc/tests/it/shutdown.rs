//! Graceful shutdown drains in-flight streams and refuses new calls.

use std::time::Duration;

use microframework_http::server::ServeOutcome;

use crate::pb::CountRequest;
use crate::{TestServer, echo_builder};

#[tokio::test]
async fn drains_an_in_flight_stream_and_refuses_new_calls() {
    let mut server = TestServer::start("grpc:\n  port: 0\n", echo_builder()).await;
    let mut client = server.client().await;
    let mut stream = client.count(CountRequest { count: 8, interval_ms: 100 }).await.unwrap().into_inner();
    assert_eq!(stream.message().await.unwrap().unwrap().n, 1);

    server.trigger_stop();
    // New connections are refused once the listener is closed.
    let uri = server.uri();
    let refused = crate::eventually(Duration::from_secs(2), || {
        let uri = uri.clone();
        async move { microframework_grpc::connect(uri).await.is_err() }
    })
    .await;
    assert!(refused, "new connections are refused after stop");
    // New calls on the open connection are refused too (HTTP/2 GOAWAY).
    let status = client.say(crate::say("late")).await.unwrap_err();
    assert!(
        matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled),
        "{status:?}"
    );

    // The stream in flight completes.
    let mut got = vec![1];
    while let Some(item) = stream.message().await.unwrap() {
        got.push(item.n);
    }
    assert_eq!(got, (1..=8).collect::<Vec<_>>());
    drop(stream);
    drop(client);
    assert_eq!(server.stop().await, ServeOutcome::Drained);
}

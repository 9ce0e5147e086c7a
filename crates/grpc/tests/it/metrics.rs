//! Metrics are recorded with bounded labels.

use std::time::Duration;

use microframework_telemetry::{Metrics, MetricsConfig};
use tonic::Code;

use crate::pb::{CountRequest, SayRequest};
use crate::{TestServer, echo_builder, eventually, frame, raw_call, say};

/// The value of the sample of `name` whose labels include every pair of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| l.starts_with(&format!("{name}{{"))).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        labels.iter().all(|(k, v)| series.contains(&format!("{k}=\"{v}\""))).then(|| value.parse().ok())?
    })
}

#[tokio::test]
async fn calls_are_counted_with_bounded_labels() {
    let metrics = Metrics::install("metrics-test", &MetricsConfig::default()).unwrap();
    let server = TestServer::start("grpc:\n  port: 0\n", echo_builder()).await;
    let mut client = server.client().await;

    client.say(say("one")).await.unwrap();
    client.say(say("two")).await.unwrap();
    let status = client.say(SayRequest { error: "not_found".into(), ..say("x") }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let mut stream = client.count(CountRequest { count: 3, interval_ms: 0 }).await.unwrap().into_inner();
    while stream.message().await.unwrap().is_some() {}
    // Unknown methods and services, with paths that must not become labels.
    let body = frame(&[]);
    let res = raw_call(server.addr, "/echo.v1.Echo/Random-a8f3", &[], body.clone()).await;
    assert_eq!(res.grpc_status(), Some(Code::Unimplemented as i32));
    let res = raw_call(server.addr, "/random.Svc-77/Method", &[], body).await;
    assert_eq!(res.grpc_status(), Some(Code::Unimplemented as i32));
    // A stream the client abandons.
    let mut stream = client.count(CountRequest { count: 1000, interval_ms: 20 }).await.unwrap().into_inner();
    stream.message().await.unwrap();
    drop(stream);

    let say_ok =
        [("grpc_service", "echo.v1.Echo"), ("grpc_method", "Say"), ("grpc_type", "unary"), ("grpc_code", "OK")];
    let handled = "grpc_server_handled_total";
    let cancelled = [("grpc_method", "Count"), ("grpc_code", "CANCELLED")];
    assert!(
        eventually(Duration::from_secs(3), || {
            let text = metrics.render();
            async move { sample(&text, handled, &cancelled).is_some() }
        })
        .await,
        "an abandoned stream counts as CANCELLED:\n{}",
        metrics.render()
    );

    let text = metrics.render();
    assert!(sample(&text, handled, &say_ok).unwrap() >= 2.0, "{text}");
    assert!(sample(&text, handled, &[("service", "metrics-test"), ("grpc_method", "Say")]).is_some(), "{text}");
    let say_started = [("grpc_service", "echo.v1.Echo"), ("grpc_method", "Say"), ("grpc_type", "unary")];
    assert!(sample(&text, "grpc_server_started_total", &say_started).unwrap() >= 3.0, "{text}");
    assert!(sample(&text, handled, &[("grpc_method", "Say"), ("grpc_code", "NOT_FOUND")]).unwrap() >= 1.0);
    let count_ok = [("grpc_method", "Count"), ("grpc_type", "server_stream"), ("grpc_code", "OK")];
    assert!(sample(&text, handled, &count_ok).unwrap() >= 1.0, "{text}");
    let unknown_method = [("grpc_service", "echo.v1.Echo"), ("grpc_method", "unknown"), ("grpc_code", "UNIMPLEMENTED")];
    assert!(sample(&text, handled, &unknown_method).unwrap() >= 1.0, "{text}");
    let unknown_service = [("grpc_service", "unknown"), ("grpc_method", "unknown"), ("grpc_code", "UNIMPLEMENTED")];
    assert!(sample(&text, handled, &unknown_service).unwrap() >= 1.0, "{text}");
    assert!(!text.contains("Random-a8f3") && !text.contains("random.Svc-77"), "raw paths are never labels");
    // Latency: a histogram once telemetry configures its buckets, a summary until then.
    assert!(sample(&text, "grpc_server_handling_seconds_count", &say_started).unwrap() >= 3.0, "{text}");
    server.stop().await;
}

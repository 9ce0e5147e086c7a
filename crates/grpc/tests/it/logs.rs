//! Handler logs carry the call's service, method and request id; failures are logged.

use std::io::Write;
use std::sync::{Arc, Mutex};

use microframework_grpc::ClientInterceptor;
use tonic::Code;

use crate::pb::SayRequest;
use crate::pb::echo_client::EchoClient;
use crate::{TestServer, echo_builder, say};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Everything this test binary logs, from a global subscriber installed once.
///
/// A thread-local subscriber (`tracing::subscriber::set_default`) is not enough while other tests
/// run in parallel: tracing caches per call site, process-wide, whether any subscriber is
/// interested, and a call site first hit on another thread (where no subscriber listens) can stay
/// disabled for this one, dropping the `grpc{...}` span about one run in four. A global subscriber
/// sees every call site from the start; each test then picks its own lines by request id.
fn captured() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber in this test binary");
        logs
    })
}

#[tokio::test]
async fn handler_logs_carry_the_call_span() {
    let logs = captured();
    let server = TestServer::start("grpc:\n  port: 0\n", echo_builder()).await;
    let interceptor = ClientInterceptor::new().request_id("log-test-1").unwrap();
    let mut client = EchoClient::with_interceptor(server.channel().await, interceptor);
    client.say(say("hello")).await.unwrap();
    let status = client.say(SayRequest { error: "internal".into(), ..say("x") }).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    server.stop().await;

    let text = logs.text();
    let mine: Vec<&str> = text.lines().filter(|l| l.contains("request_id=\"log-test-1\"")).collect();
    let line = mine.iter().find(|l| l.contains("saying")).unwrap_or_else(|| panic!("no handler log:\n{text}"));
    for part in ["grpc{", "service=\"echo.v1.Echo\"", "method=\"Say\""] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
    let failed = mine.iter().find(|l| l.contains("gRPC call failed")).unwrap_or_else(|| panic!("{text}"));
    assert!(failed.contains("ERROR") && failed.contains("INTERNAL"), "{failed}");
    let cause = mine.iter().find(|l| l.contains("disk on fire")).unwrap_or_else(|| panic!("{text}"));
    assert!(cause.contains("ERROR"), "the internal cause is logged: {cause}");
}

//! Integration tests: a test-only `echo.v1.Echo` service built with `GrpcBuilder`, served by
//! `microframework_http::server::serve` on 127.0.0.1:0 (h2c), called by real tonic clients and
//! by a raw HTTP/2 client for what tonic clients cannot send.

mod auth;
mod calls;
mod errors;
mod health;
mod limits;
mod logs;
mod metrics;
mod plugin;
mod rate_limit;
mod reflection;
mod shutdown;

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use microframework_core::{
    AppContext, Config, ConfigHandle, ConfigSources, Error, ErrorKind, FieldError, ServiceState,
};
use microframework_grpc::{GrpcApp, GrpcBuilder, IntoStatus, current_request_id, with_limits};
use microframework_http::server::{ServeOutcome, serve};

#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub(crate) mod pb {
    tonic::include_proto!("echo.v1");

    /// The encoded descriptor set of `echo.v1`, written by the build script.
    pub(crate) const DESCRIPTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/echo_v1_descriptor.bin"));
}

use pb::echo_client::EchoClient;
use pb::echo_server::EchoServer;
use pb::{ChatMessage, CountReply, CountRequest, SayReply, SayRequest, SumReply, SumRequest};

/// The domain error named by a stable code.
fn domain_error(code: &str) -> Error {
    match code {
        "not_found" => Error::not_found("no such echo"),
        "validation_failed" => Error::validation(vec![
            FieldError::new("message", "must not be empty"),
            FieldError::new("delay_ms", "must be below 1000"),
        ]),
        "conflict" => Error::conflict("already echoed"),
        "unavailable" => Error::unavailable("the echo chamber is closed"),
        "internal" => Error::internal(std::io::Error::other("secret cause: disk on fire")),
        "permission_denied" => Error::new(ErrorKind::PermissionDenied, "not yours"),
        "too_many_requests" => Error::new(ErrorKind::TooManyRequests, "slow down"),
        "timeout" => Error::new(ErrorKind::Timeout, "the database took too long"),
        other => Error::bad_request(format!("unknown error code `{other}`")),
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The test implementation of `echo.v1.Echo`.
#[derive(Clone, Default)]
pub(crate) struct Echo;

/// The messages of the `Say` calls sleeping in the handler right now, so that tests can wait
/// for a call to be running (an event) instead of for a while (a guess). Tests use unique
/// messages.
pub(crate) static RUNNING: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Whether a `Say` call with `message` is running in the handler.
pub(crate) fn is_running(message: &str) -> bool {
    RUNNING.lock().unwrap().iter().any(|m| m == message)
}

#[tonic::async_trait]
impl pb::echo_server::Echo for Echo {
    async fn say(&self, req: Request<SayRequest>) -> Result<Response<SayReply>, Status> {
        let subject = microframework_grpc::claims(&req).ok().and_then(|c| c.sub.clone()).unwrap_or_default();
        let from_extensions = microframework_grpc::request_id(&req).map(ToString::to_string);
        let req = req.into_inner();
        if req.delay_ms > 0 {
            /// Takes the message off [`RUNNING`] when the call ends, or is cancelled.
            struct Running(String);
            impl Drop for Running {
                fn drop(&mut self) {
                    RUNNING.lock().unwrap().retain(|m| *m != self.0);
                }
            }
            RUNNING.lock().unwrap().push(req.message.clone());
            let _running = Running(req.message.clone());
            tokio::time::sleep(Duration::from_millis(req.delay_ms.into())).await;
        }
        if !req.error.is_empty() {
            return Err(domain_error(&req.error)).into_status();
        }
        // The id is both in the extensions and in the task-local of the call.
        let request_id = current_request_id().map(|id| id.to_string()).unwrap_or_default();
        assert_eq!(from_extensions.as_deref(), Some(request_id.as_str()));
        tracing::info!(message = %req.message, "saying");
        Ok(Response::new(SayReply {
            message: req.message,
            request_id,
            subject,
            padding: vec![7; req.reply_padding as usize],
        }))
    }

    type CountStream = BoxStream<CountReply>;

    async fn count(&self, req: Request<CountRequest>) -> Result<Response<Self::CountStream>, Status> {
        let CountRequest { count, interval_ms } = req.into_inner();
        let interval = Duration::from_millis(interval_ms.into());
        let stream = futures_util::stream::unfold(1u32, move |n| async move {
            if n > count {
                return None;
            }
            if n > 1 {
                tokio::time::sleep(interval).await;
            }
            Some((Ok(CountReply { n }), n + 1))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn sum(&self, req: Request<Streaming<SumRequest>>) -> Result<Response<SumReply>, Status> {
        let mut stream = req.into_inner();
        let (mut total, mut count) = (0i64, 0u32);
        while let Some(msg) = stream.message().await? {
            total += msg.n;
            count += 1;
        }
        Ok(Response::new(SumReply { total, count }))
    }

    type ChatStream = BoxStream<ChatMessage>;

    async fn chat(&self, req: Request<Streaming<ChatMessage>>) -> Result<Response<Self::ChatStream>, Status> {
        let stream = req.into_inner().map(|m| m.map(|m| ChatMessage { text: format!("echo: {}", m.text) }));
        Ok(Response::new(Box::pin(stream)))
    }
}

/// An application context with this YAML configuration, in the ready state.
pub(crate) fn context(yaml: &str) -> AppContext {
    let ctx = AppContext::new("svc", ConfigHandle::new(ConfigSources::new(), Config::from_yaml(yaml).unwrap()));
    ctx.lifecycle().set_state(ServiceState::Ready);
    ctx
}

/// The builder with the echo service (message limits from the configuration) and its descriptors.
pub(crate) fn echo_builder() -> GrpcBuilder {
    GrpcBuilder::new()
        .add_service_with(|cfg| with_limits!(cfg, EchoServer::new(Echo)))
        .file_descriptor_set(pb::DESCRIPTOR)
}

/// A running server.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) ctx: AppContext,
    pub(crate) app: GrpcApp,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<ServeOutcome>>,
}

impl TestServer {
    /// Builds `builder` with the configuration `yaml` and serves its standalone router.
    pub(crate) async fn start(yaml: &str, builder: GrpcBuilder) -> Self {
        let ctx = context(yaml);
        let app = builder.build(&ctx).await.unwrap();
        Self::serve(ctx, app, |app| app.standalone_router()).await
    }

    /// Serves the router `router` picks from `app`.
    pub(crate) async fn serve(ctx: AppContext, app: GrpcApp, router: impl FnOnce(&GrpcApp) -> axum::Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let stop = async move {
            let _ = rx.await;
        };
        let task = tokio::spawn(serve(listener, router(&app), stop, Duration::from_secs(10)));
        Self { addr, ctx, app, stop: Some(tx), task }
    }

    pub(crate) fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) async fn channel(&self) -> Channel {
        microframework_grpc::connect(self.uri()).await.unwrap()
    }

    pub(crate) async fn client(&self) -> EchoClient<Channel> {
        EchoClient::new(self.channel().await)
    }

    /// Stops accepting and waits for the server to drain.
    pub(crate) fn trigger_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    pub(crate) async fn stop(mut self) -> ServeOutcome {
        self.trigger_stop();
        self.task.await.unwrap().unwrap()
    }
}

/// A gRPC message frame: uncompressed flag, big-endian length, bytes.
pub(crate) fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The response of a raw HTTP/2 request.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) data: Bytes,
    pub(crate) trailers: Option<HeaderMap>,
}

impl RawResponse {
    /// `grpc-status`, from the trailers or, for a trailers-only response, the headers.
    pub(crate) fn grpc_status(&self) -> Option<i32> {
        let value =
            self.trailers.as_ref().and_then(|t| t.get("grpc-status")).or_else(|| self.headers.get("grpc-status"));
        value.and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
    }

    pub(crate) fn grpc_message(&self) -> String {
        let value =
            self.trailers.as_ref().and_then(|t| t.get("grpc-message")).or_else(|| self.headers.get("grpc-message"));
        value.and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }
}

/// Sends one HTTP/2 request (prior knowledge) on a new connection.
pub(crate) async fn raw_request(addr: SocketAddr, req: http::Request<Full<Bytes>>) -> RawResponse {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let res = sender.send_request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    RawResponse { status: parts.status, headers: parts.headers, data: collected.to_bytes(), trailers }
}

/// A raw gRPC call of `path` with `body` (already framed) and extra metadata.
pub(crate) async fn raw_call(addr: SocketAddr, path: &str, metadata: &[(&str, &str)], body: Vec<u8>) -> RawResponse {
    let mut req = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in metadata {
        req = req.header(*k, *v);
    }
    raw_request(addr, req.body(Full::new(Bytes::from(body))).unwrap()).await
}

/// A `Say` request with `message`.
pub(crate) fn say(message: &str) -> SayRequest {
    SayRequest { message: message.to_owned(), ..SayRequest::default() }
}

/// Retries `check` every 50 ms until it returns `true`, for at most `within`.
pub(crate) async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

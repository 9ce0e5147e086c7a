//! Binding and serving with graceful shutdown and a drain deadline.
//!
//! The accept loop is our own (on hyper-util) rather than `axum::serve`, so that connections can
//! be cut when the drain deadline passes instead of outliving the server.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::config::ServerConfig;

/// The listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source} (is another process using the port? set {key} or {env})")]
pub struct BindError {
    addr: String,
    key: &'static str,
    env: &'static str,
    source: std::io::Error,
}

async fn bind_port(
    cfg: &ServerConfig,
    port: u16,
    key: &'static str,
    env: &'static str,
) -> Result<TcpListener, BindError> {
    let host = if cfg.host == "localhost" { "127.0.0.1" } else { cfg.host.as_str() };
    let addr = format!("{host}:{port}");
    TcpListener::bind(&addr).await.map_err(|source| BindError { addr, key, env, source })
}

/// Binds the listener of `cfg`.
pub async fn bind(cfg: &ServerConfig) -> Result<TcpListener, BindError> {
    bind_port(cfg, cfg.port, "server.port", "APP_SERVER__PORT").await
}

/// Binds the admin listener of `cfg` (`server.admin_port`, on `server.host`), when it is set.
pub async fn bind_admin(cfg: &ServerConfig) -> Result<Option<TcpListener>, BindError> {
    match cfg.admin_port {
        Some(port) => bind_port(cfg, port, "server.admin_port", "APP_SERVER__ADMIN_PORT").await.map(Some),
        None => Ok(None),
    }
}

/// How serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeOutcome {
    /// Every in-flight request finished.
    Drained,
    /// The deadline passed with requests still running; their connections were closed.
    DeadlineExceeded,
}

/// Connection settings of [`serve_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Send an HTTP/2 PING on each connection this often; a peer that does not answer within
    /// 20 s is disconnected (`grpc.http2_keepalive_interval`). `None` (the default) sends none.
    pub http2_keepalive_interval: Option<Duration>,
    /// Open connections at once; beyond that a connection is answered `503` and closed
    /// (`server.max_connections`, default 10000).
    pub max_connections: usize,
    /// An HTTP/1 connection that sends no complete request head within this time is closed
    /// (`server.keep_alive_timeout`, default 30 s).
    pub keep_alive_timeout: Duration,
    /// Concurrent streams per HTTP/2 connection (`server.http2_max_concurrent_streams`, 200).
    pub http2_max_concurrent_streams: u32,
    /// The largest request head, in bytes (`server.max_header_size`, 64 KiB).
    pub max_header_size: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self::from_config(&ServerConfig::default())
    }
}

impl ServeOptions {
    /// The limits of the `server` section.
    pub fn from_config(cfg: &ServerConfig) -> Self {
        Self {
            http2_keepalive_interval: None,
            max_connections: cfg.max_connections.max(1),
            keep_alive_timeout: cfg.keep_alive_timeout,
            http2_max_concurrent_streams: cfg.http2_max_concurrent_streams,
            max_header_size: cfg.max_header_size.as_usize(),
        }
    }

    /// Sets [`ServeOptions::http2_keepalive_interval`].
    #[must_use]
    pub fn http2_keepalive_interval(mut self, interval: Option<Duration>) -> Self {
        self.http2_keepalive_interval = interval;
        self
    }
}

/// Serves `router` (HTTP/1.1 and HTTP/2, with upgrades) until `stop` resolves; then stops
/// accepting, lets in-flight requests finish and closes idle connections, waiting at most
/// `deadline` before cutting what is left.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    stop: F,
    deadline: Duration,
) -> std::io::Result<ServeOutcome>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_with(listener, router, stop, deadline, ServeOptions::default()).await
}

/// What a connection over `max_connections` gets before it is closed.
static OVER_CAPACITY: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let body = microframework_core::ProblemDetails::new(
        microframework_core::ErrorKind::Unavailable,
        "Too many open connections; retry later.",
    )
    .to_json();
    let mut out = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
});

/// [`serve`] with connection settings.
pub async fn serve_with<F>(
    listener: TcpListener,
    router: Router,
    stop: F,
    deadline: Duration,
    options: ServeOptions,
) -> std::io::Result<ServeOutcome>
where
    F: Future<Output = ()> + Send + 'static,
{
    // Materialise every route once (axum otherwise rebuilds handler services on each request).
    let router: Router = router.with_state(());
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.keep_alive_timeout)
        .max_buf_size(options.max_header_size.max(8192));
    let mut h2 = builder.http2();
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(options.http2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(options.max_header_size).unwrap_or(u32::MAX));
    if let Some(interval) = options.http2_keepalive_interval {
        h2.keep_alive_interval(interval);
    }
    let capacity = Arc::new(Semaphore::new(options.max_connections));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::error!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = capacity.clone().try_acquire_owned() else {
                    refuse(stream, remote, &mut connections);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
                    let router = router.clone();
                    async move { Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|e| match e {})) }
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                connections.spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%remote, "connection ended with an error: {e}");
                    }
                    drop(permit);
                });
                // Reap finished connections so the set does not grow.
                while connections.try_join_next().is_some() {}
            }
        }
    }
    drop(listener);
    let open = graceful.count();
    tracing::info!(open_connections = open, "stopped accepting; draining in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => Ok(ServeOutcome::Drained),
        _ = tokio::time::sleep(deadline) => {
            tracing::warn!(?deadline, remaining = connections.len(), "shutdown deadline passed with requests in flight; closing their connections");
            connections.abort_all();
            while connections.join_next().await.is_some() {}
            Ok(ServeOutcome::DeadlineExceeded)
        }
    }
}

/// Answers a connection over `max_connections` with `503` and closes it, within a second.
fn refuse(mut stream: TcpStream, remote: SocketAddr, connections: &mut JoinSet<()>) {
    tracing::debug!(%remote, "connection refused: server.max_connections reached");
    metrics::counter!("http_connections_refused_total").increment(1);
    connections.spawn(async move {
        let write = async {
            stream.write_all(&OVER_CAPACITY).await?;
            stream.shutdown().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
    });
}

#[cfg(test)]
mod tests {
    use super::OVER_CAPACITY;

    #[test]
    fn the_refusal_is_a_complete_response() {
        let text = std::str::from_utf8(&OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 503);
    }
}

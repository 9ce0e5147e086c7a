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
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::config::ServerConfig;

/// The listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source} (is another process using the port? set server.port or APP_SERVER__PORT)")]
pub struct BindError {
    addr: String,
    source: std::io::Error,
}

/// Binds the listener of `cfg`.
pub async fn bind(cfg: &ServerConfig) -> Result<TcpListener, BindError> {
    let host = if cfg.host == "localhost" { "127.0.0.1" } else { cfg.host.as_str() };
    let addr = format!("{host}:{}", cfg.port);
    TcpListener::bind(&addr).await.map_err(|source| BindError { addr, source })
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Send an HTTP/2 PING on each connection this often; a peer that does not answer within
    /// 20 s is disconnected (`grpc.http2_keepalive_interval`). `None` (the default) sends none.
    pub http2_keepalive_interval: Option<Duration>,
}

impl ServeOptions {
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
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
    if let Some(interval) = options.http2_keepalive_interval {
        builder.http2().timer(TokioTimer::new()).keep_alive_interval(interval);
    }
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

//! `baseline-axum`: a bare axum hello-world, the reference the HTTP benchmark compares
//! MicroFramework services against (`cargo xtask bench http`).
//!
//! Deliberately nothing but routing: no middleware, no logging, no state. It serves
//! `GET /hello` (text), `GET /hello/json` (JSON) and `GET /health/ready` (200, so the harness polls
//! readiness the same way for every target) on `127.0.0.1:<port>`, where the port is the first
//! argument, else `$PORT`, else 3000. SIGTERM or Ctrl-C stops it gracefully with exit code 0.

use std::net::{Ipv4Addr, SocketAddr};

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde::Serialize;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port = match std::env::args().nth(1).or_else(|| std::env::var("PORT").ok()) {
        Some(p) => p.parse::<u16>().map_err(|e| anyhow::anyhow!("invalid port `{p}`: {e}"))?,
        None => 3000,
    };
    let app = Router::new()
        .route("/hello", get(hello))
        .route("/hello/json", get(hello_json))
        .route("/health/ready", get(ready));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

async fn hello() -> &'static str {
    "Hello, world!"
}

/// Same shape and serialization path as the service's `/hello/json` (a derived `Serialize` struct).
#[derive(Serialize)]
struct Greeting {
    message: &'static str,
}

async fn hello_json() -> Json<Greeting> {
    Json(Greeting { message: "Hello, world!" })
}

async fn ready() -> &'static str {
    "ready"
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

//! WebSocket integration tests: a real service on loopback, real clients.

mod auth;
mod backpressure;
mod chat;
mod common;
mod heartbeat;
mod limits;
mod metrics;
mod protocol;
mod shutdown;

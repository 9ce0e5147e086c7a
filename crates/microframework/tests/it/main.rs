//! Integration tests of the runtime, driven over real HTTP on loopback.

mod auth;
mod common;
mod config;
mod database;
mod errors;
mod health;
mod metrics;
mod middleware;
mod plugins;
mod rate_limit;
mod reload;
mod shutdown;

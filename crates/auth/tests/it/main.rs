//! Integration tests of `microframework-auth`.
#![allow(missing_docs, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

mod config;
#[cfg(feature = "axum")]
mod extract;
mod jwks;
mod support;
mod verify;

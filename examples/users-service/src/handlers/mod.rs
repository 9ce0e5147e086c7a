//! HTTP handlers.

pub mod users;

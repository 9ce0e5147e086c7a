//! HTTP handlers.

pub mod hello;
pub mod users;

//! GraphQL through a real service: HTTP and WebSocket from outside, on an in-process TestApp.

mod common;

mod auth;
mod dataloader;
mod errors;
mod graphiql;
mod limits;
mod metrics;
mod operations;
mod subscriptions;

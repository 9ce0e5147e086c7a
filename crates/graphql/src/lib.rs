//! GraphQL for MicroFramework services, on [async-graphql](async_graphql).
//!
//! - [`router`] mounts a schema, with the limits of the `graphql` section applied: `POST`/`GET` on `graphql.path` for queries and mutations
//!   (GraphQL over HTTP; `GET` runs queries only), subscriptions over WebSocket on
//!   `graphql.ws_path` (`graphql-transport-ws` and the legacy `graphql-ws`), and the GraphiQL IDE
//!   for browsers, served from assets embedded in the binary (works offline and under the
//!   default Content-Security-Policy).
//! - [`configure`] applies the limits of the [`GraphqlConfig`] section (depth and complexity,
//!   through the [`Limits`] extension, and introspection) and adds the [`Telemetry`] extension:
//!   `graphql_operations_total` and
//!   `graphql_operation_duration_seconds` with bounded labels, and a `graphql` tracing span.
//! - [`claims`] gives resolvers the caller's verified JWT claims (from the `Authorization`
//!   header, or the WebSocket `connection_init` payload), or an `UNAUTHENTICATED` error.
//! - [`gql_error`] and [`IntoGqlResult`] turn business [`Error`](microframework_core::Error)s
//!   into GraphQL errors with stable `extensions.code` values ([`codes`]): `NOT_FOUND`,
//!   `BAD_USER_INPUT` (with `extensions.fields`), `UNAUTHENTICATED`, `FORBIDDEN`, `CONFLICT`,
//!   `INTERNAL_SERVER_ERROR` (generic message, cause logged), `SERVICE_UNAVAILABLE`...
//! - [`DataLoader`] batches the loads of one tick into one call of a [`Loader`] (the N+1
//!   problem); see below.
//!
//! Requests that cannot be executed get GraphQL-shaped JSON errors (`{"errors": [...]}` with an
//! `extensions.code`) and a 4xx status: invalid JSON (400), a content type other than
//! `application/json` (415, which also stops cross-site form posts), a body over
//! `graphql.max_body` (413), a mutation over `GET` (405), batched requests (400). Syntax errors,
//! unknown fields and depth or complexity violations are ordinary GraphQL responses (200 with
//! `application/json`, 400 with `application/graphql-response+json`) whose errors carry
//! `GRAPHQL_PARSE_FAILED` or `GRAPHQL_VALIDATION_FAILED`.
//!
//! # Example
//!
//! ```no_run
//! use async_graphql::{Context, EmptySubscription, Object, Result, Schema};
//! use microframework::Service;
//! use microframework_graphql::IntoGqlResult;
//!
//! struct Query;
//!
//! #[Object]
//! impl Query {
//!     /// Who is calling (requires a bearer token).
//!     async fn me(&self, ctx: &Context<'_>) -> Result<String> {
//!         Ok(microframework_graphql::claims(ctx)?.subject().unwrap_or_default().to_owned())
//!     }
//!
//!     async fn book(&self, id: u32) -> Result<String> {
//!         find_book(id).into_gql() // NOT_FOUND, with the business error's message
//!     }
//! }
//!
//! fn find_book(id: u32) -> Result<String, microframework_core::Error> {
//!     Err(microframework_core::Error::not_found(format!("No book {id}.")))
//! }
//!
//! struct Mutation;
//!
//! #[Object]
//! impl Mutation {
//!     async fn ping(&self) -> bool {
//!         true
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     Service::new("books")
//!         // The `graphql` section's limits (depth, complexity, introspection) are applied.
//!         .router(|ctx| microframework_graphql::router(Schema::build(Query, Mutation, EmptySubscription), ctx))
//!         .run()
//!         .await
//! }
//! ```
//!
//! # DataLoader
//!
//! A resolver that loads one record per parent (the author of each book) runs one query per
//! parent: N+1 queries for a list. A [`DataLoader`] collects the keys requested during one tick
//! and calls [`Loader::load`] once with all of them:
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Arc;
//!
//! use async_graphql::{Context, Object, Result, SimpleObject};
//! use microframework_graphql::{DataLoader, Loader};
//!
//! #[derive(Clone, SimpleObject)]
//! struct Author {
//!     id: u32,
//!     name: String,
//! }
//!
//! struct AuthorLoader; // holds the database pool in a real service
//!
//! impl Loader<u32> for AuthorLoader {
//!     type Value = Author;
//!     type Error = Arc<microframework_core::Error>;
//!
//!     async fn load(&self, ids: &[u32]) -> Result<HashMap<u32, Author>, Self::Error> {
//!         // One `SELECT ... WHERE id = ANY($1)` for every author of the response.
//!         Ok(ids.iter().map(|&id| (id, Author { id, name: format!("Author {id}") })).collect())
//!     }
//! }
//!
//! struct Book {
//!     author_id: u32,
//! }
//!
//! #[Object]
//! impl Book {
//!     async fn author(&self, ctx: &Context<'_>) -> Result<Option<Author>> {
//!         let loader = ctx.data::<DataLoader<AuthorLoader>>()?;
//!         loader.load_one(self.author_id).await.map_err(|e| microframework_graphql::gql_error(&e))
//!     }
//! }
//!
//! // Register the loader once, as schema data; `DataLoader::new` does not cache across
//! // requests, so no data leaks from one caller to another.
//! // Schema::build(Query, Mutation, Subscription).data(DataLoader::new(AuthorLoader, tokio::spawn))
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod assets;
pub mod config;
pub mod error;
mod http;
pub mod limits;
mod plugin;
mod router;
pub mod telemetry;
mod ws;

pub use config::GraphqlConfig;
pub use error::{IntoGqlResult, claims, coded_error, codes, gql_error, require_role, require_scope};
pub use limits::Limits;
pub use plugin::GraphqlPlugin;
pub use router::{SchemaBuilderExt, configure, router, router_with_schema};
pub use telemetry::Telemetry;

/// Batch loading, the cure for N+1 queries (see the [crate documentation](crate#dataloader)).
pub use async_graphql::dataloader::{DataLoader, Loader};

/// The async-graphql version this crate is built on, re-exported so that services use the same.
pub use async_graphql;

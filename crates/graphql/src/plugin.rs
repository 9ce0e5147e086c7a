//! [`GraphqlPlugin`]: a GraphQL schema as a plugin of the service.

use async_graphql::{ObjectType, SchemaBuilder, SubscriptionType};
use microframework_core::{AppContext, BoxError, Plugin, PluginContext};
use microframework_http::HttpParts;

use crate::config::GraphqlConfig;

/// Serves a GraphQL schema (section `graphql`): queries and mutations at `graphql.path` (default
/// `/graphql`, with an offline GraphiQL page), subscriptions over WebSocket at `graphql.ws_path`
/// (default `/graphql/ws`).
///
/// `build` returns the schema builder once components have started (so resolvers' data can
/// hold a database pool); the section's `max_depth`, `max_complexity` and `introspection` are
/// applied to it, with per-operation metrics and tracing ([`crate::router`]). Exempt from
/// `auth.jwt.required`: the subscription path, because it authenticates `connection_init`
/// itself with the service's one verifier, and the requests that only load GraphiQL
/// ([`GraphqlConfig::is_graphiql_request`]). `Service::graphql(build)` adds it.
///
/// To mount a schema whose limits your code sets itself, add a router with
/// [`crate::router_with_schema`] instead.
pub struct GraphqlPlugin<F> {
    build: F,
}

impl<F> std::fmt::Debug for GraphqlPlugin<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphqlPlugin").finish_non_exhaustive()
    }
}

impl<F> GraphqlPlugin<F> {
    /// The plugin serving the schema `build` returns.
    pub fn new(build: F) -> Self {
        Self { build }
    }
}

impl<F, Q, M, S> Plugin for GraphqlPlugin<F>
where
    F: FnOnce(&AppContext) -> Result<SchemaBuilder<Q, M, S>, BoxError> + Send + 'static,
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    type Config = GraphqlConfig;

    fn name(&self) -> &str {
        "graphql"
    }

    fn section(&self) -> Option<&str> {
        Some(GraphqlConfig::SECTION)
    }

    fn build(self, config: GraphqlConfig, cx: &mut PluginContext<'_>) -> Result<(), BoxError> {
        let build = self.build;
        HttpParts::of(cx)
            .public_path(config.ws_path.clone())
            .public_request(move |method, uri, headers| config.is_graphiql_request(method, uri, headers))
            .router(move |ctx| crate::router(build(ctx)?, ctx));
        Ok(())
    }
}

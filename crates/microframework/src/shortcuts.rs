//! Shorthands for the plugins of the integrations this crate re-exports. Each is one line over
//! [`Service::plugin`]; the service builder itself knows no integration.

#[cfg(any(feature = "grpc", feature = "graphql"))]
use microframework_core::{AppContext, BoxError};

use crate::Service;

impl Service {
    /// Adds the SQL database plugin (section `database`), with embedded migrations:
    /// [`DatabasePlugin`](microframework_data::DatabasePlugin).
    ///
    /// The pool is available to route builders as `ctx.require::<Database>()`.
    #[cfg(feature = "data")]
    pub fn database(self, migrations: microframework_data::Migrations) -> Self {
        self.plugin(microframework_data::DatabasePlugin::new(migrations))
    }

    /// Serves gRPC services (section `grpc`) built by `build` once components have started:
    /// [`GrpcPlugin`](microframework_grpc::GrpcPlugin). On their own port (`grpc.port`, default
    /// 50051), or beside REST on the HTTP listener when `grpc.port` equals a non-zero
    /// `server.port`. Health, reflection, request ids, metrics and tracing are on; the service's
    /// JWT verifier (`auth.jwt`) and rate limiter (`http.rate_limit`, shared with REST) apply;
    /// shutdown drains streams like HTTP requests.
    #[cfg(feature = "grpc")]
    pub fn grpc<F>(self, build: F) -> Self
    where
        F: FnOnce(&AppContext) -> Result<microframework_grpc::GrpcBuilder, BoxError> + Send + 'static,
    {
        self.plugin(microframework_grpc::GrpcPlugin::new(build))
    }

    /// Serves WebSocket connections at `websocket.path` (default `/ws`) with `handler`, sharing
    /// `hub` (rooms, broadcast) with the rest of the service:
    /// [`WebSocketPlugin`](microframework_ws::WebSocketPlugin). On shutdown every peer gets a
    /// close frame with code 1001. With `auth.jwt.required` an anonymous upgrade gets 401, unless
    /// `websocket.require_auth: false` or `auth.jwt.public_paths` makes the endpoint public.
    #[cfg(feature = "ws")]
    pub fn websocket<H: microframework_ws::WsHandler>(self, hub: microframework_ws::Hub, handler: H) -> Self {
        self.plugin(microframework_ws::WebSocketPlugin::new(hub, handler))
    }

    /// Serves the GraphQL schema `build` returns (section `graphql`):
    /// [`GraphqlPlugin`](microframework_graphql::GraphqlPlugin). Queries and mutations at
    /// `graphql.path` (default `/graphql`, with an offline GraphiQL page), subscriptions at
    /// `graphql.ws_path` (default `/graphql/ws`); the section's `max_depth`, `max_complexity`
    /// and `introspection` are applied to the schema. Verified JWT claims reach resolvers
    /// (`microframework::graphql::claims(ctx)`).
    ///
    /// To mount a schema whose limits your code sets itself, use [`Service::router`] with
    /// [`microframework_graphql::router_with_schema`].
    #[cfg(feature = "graphql")]
    pub fn graphql<F, Q, M, S>(self, build: F) -> Self
    where
        F: FnOnce(&AppContext) -> Result<async_graphql::SchemaBuilder<Q, M, S>, BoxError> + Send + 'static,
        Q: async_graphql::ObjectType + 'static,
        M: async_graphql::ObjectType + 'static,
        S: async_graphql::SubscriptionType + 'static,
    {
        self.plugin(microframework_graphql::GraphqlPlugin::new(build))
    }
}

//! Mounting a schema: the axum router and the schema limits.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Executor, ObjectType, Schema, SchemaBuilder, SubscriptionType};
use axum::Router;
use axum::routing::{any, get};
use microframework_auth::{AuthConfig, SharedJwt};
use microframework_core::{AppContext, BoxError};
use tokio_util::sync::CancellationToken;

use crate::config::GraphqlConfig;
use crate::limits::Limits;
use crate::telemetry::Telemetry;
use crate::ws::{VerifierSource, WsAuth};
use crate::{assets, http, ws};

/// What the handlers share.
pub(crate) struct Shared<E> {
    pub(crate) executor: E,
    pub(crate) cfg: GraphqlConfig,
    /// The largest HTTP request body read: `graphql.max_body`, else `http.body_limit.max` (the
    /// default middleware checks only `Content-Length`; a chunked body is counted here).
    pub(crate) body_limit: usize,
    /// The GraphiQL page, when `graphql.graphiql` is on.
    pub(crate) page: Option<String>,
    pub(crate) auth: Arc<WsAuth>,
    pub(crate) shutdown: CancellationToken,
    /// One permit per open WebSocket connection (`graphql.max_ws_connections`).
    pub(crate) ws_slots: Arc<tokio::sync::Semaphore>,
}

/// Mounts the schema of `builder` on the paths of the `graphql` configuration section of `ctx`,
/// with the section's limits applied ([`configure`]: `max_depth`, `max_complexity`,
/// `introspection`, and per-operation metrics and tracing).
///
/// | Route | What |
/// |---|---|
/// | `POST {path}` | any operation, `Content-Type: application/json` (or `application/graphql`) |
/// | `GET {path}?query=...` | queries (mutations get `405`, as GraphQL over HTTP requires) |
/// | `GET {path}` with `Accept: text/html` | the GraphiQL IDE (when `graphql.graphiql` is on) |
/// | `GET {path}/assets/{file}` | GraphiQL's scripts, styles and fonts, embedded in the binary |
/// | `GET {ws_path}` | WebSocket, `graphql-transport-ws` or legacy `graphql-ws` |
///
/// Resolvers see the verified JWT [`Claims`](microframework_auth::Claims) of the caller with
/// [`crate::claims`] (or `ctx.data_opt::<Claims>()`): over HTTP from the request extensions
/// filled by the JWT layer of the default middleware, over WebSocket from the `connection_init`
/// payload (`{"Authorization": "Bearer ..."}` or `{"token": "..."}`), verified with the service's
/// shared verifier ([`SharedJwt`], one JWKS cache for every protocol; one is built from
/// `auth.jwt` on first use when the service has none), or from the upgrade request's
/// `Authorization` header. With `auth.jwt.required`, connections without valid claims are closed
/// with `4403`; a connection with claims is closed with `4403` when its token expires (after the
/// leeway).
///
/// # Errors
///
/// Invalid `graphql` or `auth` configuration sections.
pub fn router<Q, M, S>(builder: SchemaBuilder<Q, M, S>, ctx: &AppContext) -> Result<Router, BoxError>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let cfg = GraphqlConfig::from_context(ctx)?;
    router_with_schema(configure(builder, &cfg).finish(), ctx)
}

/// Mounts a schema your code has finished, as [`router`] does, but **without** applying the
/// `graphql` section's `max_depth`, `max_complexity` and `introspection`: the schema keeps the
/// limits (or none) it was built with. Use it when the code sets its own limits on purpose.
///
/// # Errors
///
/// Invalid `graphql` or `auth` configuration sections.
pub fn router_with_schema<Q, M, S>(schema: Schema<Q, M, S>, ctx: &AppContext) -> Result<Router, BoxError>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let auth: AuthConfig = ctx.config().section("auth")?;
    let source = match (SharedJwt::get(ctx), auth.enabled_jwt()) {
        (Some(shared), _) => VerifierSource::Given(shared.verifier),
        (None, Some(jwt)) => VerifierSource::FromConfig { config: Box::new(jwt.clone()), cell: Default::default() },
        (None, None) => VerifierSource::Off,
    };
    build(schema, ctx, source, &auth)
}

fn build<E: Executor>(
    executor: E,
    ctx: &AppContext,
    source: VerifierSource,
    auth: &AuthConfig,
) -> Result<Router, BoxError> {
    let cfg = GraphqlConfig::from_context(ctx)?;
    let required = auth.enabled_jwt().is_some_and(|j| j.required);
    let leeway = Duration::from_secs(auth.enabled_jwt().map_or(0, |j| j.leeway_seconds));
    let assets_path = cfg.assets_path();
    let current = ctx.config().current();
    let body_limit = match cfg.max_body {
        Some(max) => max.as_usize(),
        None if current.get::<bool>("http.body_limit.enabled").unwrap_or(true) => current
            .get::<microframework_core::ByteSize>("http.body_limit.max")
            .unwrap_or(microframework_core::ByteSize::mib(2))
            .as_usize(),
        None => usize::MAX,
    };
    let page = cfg.graphiql.then(|| assets::page(&cfg.path, Some(&cfg.ws_path), &assets_path));
    let shared = Arc::new(Shared {
        executor,
        page,
        auth: Arc::new(WsAuth { source, required, leeway }),
        // Subscriptions close when the listeners stop accepting (end of `shutdown.drain_delay`).
        shutdown: ctx.lifecycle().closing_token(),
        ws_slots: Arc::new(tokio::sync::Semaphore::new(cfg.max_ws_connections)),
        cfg: cfg.clone(),
        body_limit,
    });
    let mut router = Router::new()
        .route(&cfg.path, get(http::get::<E>).post(http::post::<E>))
        .route(&cfg.ws_path, any(ws::upgrade::<E>));
    if cfg.graphiql {
        router = router.route(&format!("{assets_path}/{{file}}"), get(http::asset));
    }
    Ok(router.with_state(shared))
}

/// Applies the `graphql` section to a schema builder: the depth and complexity limits
/// (`max_depth`, `max_complexity`), `disable_introspection()` unless `introspection`, and the
/// [`Telemetry`] extension (per-operation metrics and tracing).
///
/// The limits are enforced by the [`Limits`] extension rather than async-graphql's
/// `limit_depth`/`limit_complexity`: it computes the same numbers, but does not count the
/// `ofType` nesting of introspection queries, so that GraphiQL and code generators can load the
/// schema (their standard introspection query has a depth of 15).
///
/// ```
/// use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
/// use microframework_graphql::{GraphqlConfig, configure};
///
/// struct Query;
///
/// #[Object]
/// impl Query {
///     async fn hello(&self) -> &str {
///         "world"
///     }
/// }
///
/// let cfg = GraphqlConfig { max_depth: 5, ..GraphqlConfig::default() };
/// let schema = configure(Schema::build(Query, EmptyMutation, EmptySubscription), &cfg).finish();
/// # let _ = schema;
/// ```
pub fn configure<Q, M, S>(builder: SchemaBuilder<Q, M, S>, cfg: &GraphqlConfig) -> SchemaBuilder<Q, M, S> {
    // Telemetry first: it wraps the limits, so that their rejections are counted and coded.
    let builder = builder.extension(Telemetry).extension(Limits::new(cfg.max_depth, cfg.max_complexity));
    if cfg.introspection { builder } else { builder.disable_introspection() }
}

/// [`configure`] as a method of `SchemaBuilder`.
///
/// ```
/// use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
/// use microframework_graphql::{GraphqlConfig, SchemaBuilderExt};
///
/// struct Query;
///
/// #[Object]
/// impl Query {
///     async fn hello(&self) -> &str {
///         "world"
///     }
/// }
///
/// let schema = Schema::build(Query, EmptyMutation, EmptySubscription).configured(&GraphqlConfig::default()).finish();
/// # let _ = schema;
/// ```
pub trait SchemaBuilderExt: Sized {
    /// See [`configure`].
    fn configured(self, cfg: &GraphqlConfig) -> Self;
}

impl<Q, M, S> SchemaBuilderExt for SchemaBuilder<Q, M, S> {
    fn configured(self, cfg: &GraphqlConfig) -> Self {
        configure(self, cfg)
    }
}

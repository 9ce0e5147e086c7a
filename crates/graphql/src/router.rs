//! Mounting a schema: the axum router and the schema limits.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Executor, ObjectType, Schema, SchemaBuilder, SubscriptionType};
use axum::Router;
use axum::routing::{any, get};
use microframework_auth::{AuthConfig, JwtVerifier};
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
}

/// Mounts `schema` on the paths of the `graphql` configuration section of `ctx`.
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
/// payload (`{"Authorization": "Bearer ..."}` or `{"token": "..."}`), verified with a verifier
/// built from `auth.jwt` on first use, or from the upgrade request's `Authorization` header.
/// With `auth.jwt.required`, connections without valid claims are closed with `4403`; a
/// connection with claims is closed with `4403` when its token expires (after the leeway).
///
/// Limits and metrics are properties of the schema: build it with [`configure`].
///
/// # Errors
///
/// Invalid `graphql` or `auth` configuration sections.
pub fn router<Q, M, S>(schema: Schema<Q, M, S>, ctx: &AppContext) -> Result<Router, BoxError>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    with_config_verifier(schema, ctx, None)
}

/// [`build`] verifying `connection_init` tokens with the verifier in `slot` when there is one,
/// else with one built from `auth.jwt` on first use; tokens are ignored without `auth.jwt`.
fn with_config_verifier<E: Executor>(
    executor: E,
    ctx: &AppContext,
    slot: Option<VerifierSlot>,
) -> Result<Router, BoxError> {
    let auth: AuthConfig = ctx.config().section("auth")?;
    let source = match auth.enabled_jwt() {
        Some(jwt) => VerifierSource::FromConfig { config: Box::new(jwt.clone()), cell: Default::default(), slot },
        None => VerifierSource::Off,
    };
    build(executor, ctx, source, &auth)
}

/// A JWT verifier handed to a GraphQL router after it is built: [`router_with_verifier_slot`]
/// takes the slot, and the application [sets](Self::set) the verifier its HTTP layer uses once it
/// exists, so that both share one key cache (one JWKS fetch and refresh). `Service::graphql`
/// does this.
#[derive(Clone, Default)]
pub struct VerifierSlot(Arc<std::sync::OnceLock<JwtVerifier>>);

impl std::fmt::Debug for VerifierSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierSlot").field("set", &self.0.get().is_some()).finish()
    }
}

impl VerifierSlot {
    /// An empty slot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `verifier` in the slot; `false` (and nothing changes) when it already holds one.
    pub fn set(&self, verifier: JwtVerifier) -> bool {
        self.0.set(verifier).is_ok()
    }

    /// The verifier, once set.
    pub fn get(&self) -> Option<&JwtVerifier> {
        self.0.get()
    }
}

/// Like [`router`], verifying WebSocket `connection_init` tokens with the verifier put in `slot`
/// (the HTTP layer's, set once it is built). Should a token arrive before the slot is set, a
/// verifier is built from `auth.jwt` as [`router`] does. Without an `auth.jwt` section tokens in
/// `connection_init` are ignored.
///
/// # Errors
///
/// Invalid `graphql` or `auth` configuration sections.
pub fn router_with_verifier_slot<Q, M, S>(
    schema: Schema<Q, M, S>,
    ctx: &AppContext,
    slot: VerifierSlot,
) -> Result<Router, BoxError>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    with_config_verifier(schema, ctx, Some(slot))
}

/// Like [`router`], verifying WebSocket `connection_init` tokens with `verifier` (the one the
/// HTTP layer uses, so that JWKS keys are fetched once); `None` ignores such tokens, leaving
/// only the claims of the upgrade request's `Authorization` header.
///
/// # Errors
///
/// Invalid `graphql` or `auth` configuration sections.
pub fn router_with_auth<Q, M, S>(
    schema: Schema<Q, M, S>,
    ctx: &AppContext,
    verifier: Option<JwtVerifier>,
) -> Result<Router, BoxError>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let auth: AuthConfig = ctx.config().section("auth")?;
    let source = match verifier {
        Some(v) => VerifierSource::Given(v),
        None => VerifierSource::Off,
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

//! The upgrade endpoint: origin, authentication and capacity checks before upgrading.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::response::Response;
use axum::routing::any;
use http::{HeaderValue, header};
use tokio::sync::OnceCell;

use microframework_auth::{AuthConfig, AuthError, Claims, JwtConfig, JwtVerifier, SharedJwt};
use microframework_core::{AppContext, BoxError, ErrorKind, ProblemDetails};
use microframework_http::middleware::auth::reject;
use microframework_http::problem_response;

use crate::config::WsConfig;
use crate::handler::WsHandler;
use crate::hub::Hub;
use crate::session;

/// Read buffer per connection (tungstenite allocates it eagerly; its default is 128 KiB).
const READ_BUFFER: usize = 4 * 1024;
/// Bytes gathered before a write reaches the socket (a flush always writes everything).
const WRITE_BUFFER: usize = 8 * 1024;
/// Name of the query parameter carrying a token, for browsers (they cannot set headers).
pub const ACCESS_TOKEN_PARAM: &str = "access_token";

pub(crate) struct Endpoint {
    pub(crate) hub: Hub,
    pub(crate) handler: Arc<dyn WsHandler>,
    pub(crate) cfg: WsConfig,
    /// `websocket.require_auth`, or when unset what `auth.jwt.required` says of the path.
    require_auth: bool,
    verifier: Option<JwtVerifier>,
    /// `auth.jwt`, to build a verifier on first use when the caller passed none.
    jwt: Option<(JwtConfig, OnceCell<Result<JwtVerifier, AuthError>>)>,
}

/// Mounts the WebSocket endpoint at `websocket.path`.
///
/// - Reads and validates the `websocket` section of `ctx` (a [`ConfigError`] listing every
///   problem on failure) and applies it to `hub`.
/// - Upgrades are checked before upgrading, in this order: not a WebSocket upgrade → 400/405/426;
///   `Origin` not in `allowed_origins` → 403; invalid `?access_token=` → 401; authentication
///   required without a valid token → 401; `max_connections` reached or shutting down → 503.
///   Every refusal is `application/problem+json`.
/// - Authentication is required when `websocket.require_auth` is `true`, or when it is unset and
///   `auth.jwt.required` is on (unless the path is in `auth.jwt.public_paths`).
/// - Tokens: the HTTP stack has already verified an `Authorization: Bearer` header and put the
///   [`Claims`] in the request. Browsers cannot set that header on a WebSocket, so a token in the
///   `access_token` query parameter is verified with `verifier`, or, when `None`, with the
///   service's shared verifier ([`SharedJwt`]), or one built from the `auth.jwt` section on first
///   use. With `auth.jwt.required`, the HTTP layer must let anonymous upgrades of the path through
///   so that query-token upgrades reach this endpoint (`Service::websocket` does).
/// - Spawns a task that, when `ctx`'s shutdown is requested, closes every connection with `1001`
///   and waits up to `close_timeout` (see [`Hub::shutdown`]).
///
/// # Errors
///
/// An invalid `websocket` section, or no Tokio runtime to spawn the shutdown task on.
///
/// [`ConfigError`]: microframework_core::ConfigError
pub fn router<H: WsHandler>(
    hub: Hub,
    handler: H,
    ctx: &AppContext,
    verifier: Option<JwtVerifier>,
) -> Result<Router, BoxError> {
    let cfg: WsConfig = ctx.config().section("websocket")?;
    let auth: AuthConfig = ctx.config().section("auth")?;
    let shared = SharedJwt::get(ctx);
    let verifier = verifier.or_else(|| shared.as_ref().map(|s| s.verifier.clone()));
    let jwt_config = shared.map(|s| s.config).or_else(|| auth.enabled_jwt().cloned());
    let require_auth =
        cfg.require_auth.unwrap_or_else(|| jwt_config.as_ref().is_some_and(|j| j.required && !j.is_public(&cfg.path)));
    let jwt = match &verifier {
        Some(_) => None,
        None => jwt_config.map(|j| (j, OnceCell::new())),
    };
    if require_auth && verifier.is_none() && jwt.is_none() {
        return Err("`websocket.require_auth` is on but no JWT verification is configured: every upgrade would be \
                    refused with 401; configure `auth.jwt` or set `websocket.require_auth: false`"
            .into());
    }
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "microframework_ws::router must be called within a Tokio runtime")?;
    hub.configure(&cfg);

    // Peers are closed when the listeners stop accepting, at the end of `shutdown.drain_delay`:
    // until then the instance keeps serving them while load balancers stop routing here.
    let token = ctx.lifecycle().closing_token();
    let watcher = hub.clone();
    let timeout = cfg.close_timeout;
    runtime.spawn(async move {
        token.cancelled().await;
        watcher.shutdown(timeout).await;
    });

    let path = cfg.path.clone();
    let endpoint = Arc::new(Endpoint { hub, handler: Arc::new(handler), cfg, require_auth, verifier, jwt });
    Ok(Router::new().route(&path, any(upgrade)).with_state(endpoint))
}

impl Endpoint {
    async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if let Some(v) = &self.verifier {
            return v.verify(token).await;
        }
        let Some((cfg, cell)) = &self.jwt else {
            return Err(AuthError::Malformed(
                "`access_token` cannot be verified: no JWT verification is configured".to_owned(),
            ));
        };
        match cell.get_or_init(|| JwtVerifier::from_config(cfg)).await {
            Ok(v) => v.verify(token).await,
            Err(e) => Err(e.clone()),
        }
    }
}

fn query_token(uri: &http::Uri) -> Option<String> {
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == ACCESS_TOKEN_PARAM).map(|(_, v)| v.into_owned())
}

fn problem(status: u16, kind: ErrorKind, detail: impl Into<String>) -> Response {
    problem_response(ProblemDetails::with_status(status, kind, detail.into()))
}

async fn upgrade(State(ep): State<Arc<Endpoint>>, req: Request) -> Response {
    let (mut parts, _body) = req.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => {
            let status = rejection.status().as_u16();
            return problem(
                status,
                ErrorKind::from_http_status(status),
                format!("This endpoint takes WebSocket upgrades only: {}.", rejection.body_text()),
            );
        }
    };

    let origin = parts.headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("\u{0}"));
    if !ep.cfg.origin_allowed(origin) {
        tracing::debug!(origin = ?parts.headers.get(header::ORIGIN), "WebSocket upgrade from a disallowed origin");
        return problem(403, ErrorKind::PermissionDenied, "This origin may not open WebSocket connections.");
    }

    let claims = match parts.extensions.remove::<Claims>() {
        Some(c) => Some(c),
        None => match query_token(&parts.uri) {
            Some(token) => match ep.verify(&token).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::debug!(error = %e, "rejected the WebSocket access_token");
                    return reject(&e);
                }
            },
            None => None,
        },
    };
    if ep.require_auth && claims.is_none() {
        return reject(&AuthError::MissingToken);
    }

    let Some(slot) = ep.hub.try_reserve(ep.cfg.max_connections) else {
        let detail = if ep.hub.is_shutting_down() {
            "The service is shutting down; connect to another instance."
        } else {
            "Too many WebSocket connections; retry later."
        };
        let mut res = problem(503, ErrorKind::Unavailable, detail);
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return res;
    };

    let remote = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let limit = ep.cfg.max_message_size.as_usize();
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_failed_upgrade(|e| tracing::debug!("WebSocket upgrade failed: {e}"))
        .on_upgrade(move |socket| session::run(socket, ep, slot, claims, remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_query() {
        let uri: http::Uri = "/ws?x=1&access_token=a.b%2Bc&access_token=second".parse().unwrap();
        assert_eq!(query_token(&uri).as_deref(), Some("a.b+c"));
        assert_eq!(query_token(&"/ws".parse().unwrap()), None);
        assert_eq!(query_token(&"/ws?token=x".parse().unwrap()), None);
    }
}

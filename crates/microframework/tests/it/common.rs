use std::time::Duration;

use microframework::axum::Router;
use microframework::axum::extract::{Path as AxPath, Query as AxQuery};
use microframework::axum::http::StatusCode;
use microframework::axum::routing::{get, post};
use microframework::prelude::*;
use serde::{Deserialize, Serialize};

pub(crate) const SECRET: &str = "test-secret-that-is-long-enough-0123456789";

#[derive(Debug, Deserialize, Serialize, Validate, ToSchema)]
pub(crate) struct Payload {
    #[validate(length(min = 1, max = 10))]
    pub(crate) name: String,
    #[validate(range(min = 0, max = 150))]
    pub(crate) age: u32,
}

/// Echoes a valid payload.
#[utoipa::path(post, path = "/echo", request_body = Payload, responses((status = 200, body = Payload)))]
async fn echo(Valid(p): Valid<Payload>) -> Json<Payload> {
    Json(p)
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: u64,
}

async fn slow(AxQuery(q): AxQuery<SlowQuery>) -> String {
    tokio::time::sleep(Duration::from_millis(q.ms)).await;
    format!("slept {}", q.ms)
}

/// A service exercising every part of the runtime.
pub(crate) fn service() -> Service {
    Service::new("it-service").version("1.2.3").api(|_| Ok(OpenApiRouter::new().routes(routes!(echo)))).router(|ctx| {
        let flags = ctx.features().clone();
        Ok(Router::new()
            .route("/hello", get(|| async { "hi" }))
            .route(
                "/endless-error",
                get(|| async {
                    // An error whose body never ends: the problem layer must not wait for it.
                    let body = futures_util::stream::pending::<Result<Vec<u8>, std::io::Error>>();
                    (StatusCode::BAD_GATEWAY, microframework::axum::body::Body::from_stream(body))
                }),
            )
            .route("/slow", get(slow))
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("boom");
                    }
                    "unreachable"
                }),
            )
            .route("/whoami", get(|claims: Claims| async move { claims.sub.unwrap_or_default() }))
            .route(
                "/maybe",
                get(|claims: Option<Claims>| async move {
                    claims.and_then(|c| c.sub).unwrap_or_else(|| "anonymous".into())
                }),
            )
            .route(
                "/status/{code}",
                get(|AxPath(code): AxPath<u16>| async move {
                    StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT)
                }),
            )
            .route(
                "/plain-json",
                post(|microframework::axum::Json(v): microframework::axum::Json<Payload>| async move { v.name }),
            )
            .route(
                "/orders",
                post(|| async {
                    microframework::metrics::counter!("orders_created_total", "channel" => "web").increment(1);
                    StatusCode::CREATED
                }),
            )
            .route(
                "/flag",
                get(move || {
                    let f = flags.clone();
                    async move { f.is_enabled("beta").to_string() }
                }),
            ))
    })
}

pub(crate) fn token(sub: &str, exp_offset: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = serde_json::json!({ "sub": sub, "exp": now + exp_offset, "iat": now, "roles": ["user"] });
    microframework::auth::JwtSigner::hs256(SECRET.as_bytes()).sign(&claims).unwrap()
}

pub(crate) fn jwt_yaml(extra: &str) -> String {
    format!("auth:\n  jwt:\n    secret: {SECRET}\n{extra}")
}

/// Polls `check` every 100 ms for up to 15 s; panics naming `what` when it never holds.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

//! `framework-hello`: the baseline's routes served by a MicroFramework `Service` with its full
//! default middleware (request id, trace span, RED metrics, timeout, body limit, panic catching,
//! security headers, problem details; JWT and rate limiting are off, as they are by default).
//! `cargo xtask bench http` compares it with `baseline-axum` in the same run.
//!
//! Configuration comes from the usual sources (`APP_SERVER__PORT`, `APP_LOGGING__LEVEL`, ...).

use microframework::prelude::*;
use serde::Serialize;

/// Same shape and serialization path as the baseline's `/hello/json`.
#[derive(Serialize, ToSchema)]
struct Greeting {
    message: &'static str,
}

/// Plain-text greeting.
#[utoipa::path(get, path = "/hello", responses((status = 200, body = String)))]
async fn hello() -> &'static str {
    "Hello, world!"
}

/// JSON greeting.
#[utoipa::path(get, path = "/hello/json", responses((status = 200, body = Greeting)))]
async fn hello_json() -> Json<Greeting> {
    Json(Greeting { message: "Hello, world!" })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    Service::new("framework-hello")
        .version(env!("CARGO_PKG_VERSION"))
        .api(|_| Ok(OpenApiRouter::new().routes(routes!(hello)).routes(routes!(hello_json))))
        .run()
        .await
}

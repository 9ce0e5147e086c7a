//! `/hello`: minimal routes, used by the benchmarks to measure the framework's own overhead.

use microframework::prelude::*;
use serde::Serialize;

/// The routes.
pub fn router() -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(hello)).routes(routes!(hello_json))
}

/// A greeting.
#[derive(Debug, Serialize, ToSchema)]
pub struct Greeting {
    /// The message.
    pub message: &'static str,
}

/// Plain-text greeting.
#[utoipa::path(get, path = "/hello", tag = "hello", responses((status = 200, body = String)))]
async fn hello() -> &'static str {
    "Hello, world!"
}

/// JSON greeting.
#[utoipa::path(get, path = "/hello/json", tag = "hello", responses((status = 200, body = Greeting)))]
async fn hello_json() -> Json<Greeting> {
    Json(Greeting { message: "Hello, world!" })
}

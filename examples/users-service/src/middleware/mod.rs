//! Service-specific middleware. The framework's default stack (request id, tracing, metrics,
//! timeout, body limit, panic catching, CORS, security headers, JWT, rate limit)
//! already wraps every route; add your own layers here and register them in `lib.rs` with
//! `Service::layer`.

use std::future::Ready;

use microframework::axum::http::HeaderValue;
use microframework::axum::middleware::{MapResponseLayer, map_response};
use microframework::axum::response::Response;

/// Adds `x-service-version: <crate version>` to every response of the service's routes, so that
/// clients and logs can tell which build answered.
pub fn version_header() -> MapResponseLayer<fn(Response) -> Ready<Response>, (), ()> {
    fn stamp(mut res: Response) -> Ready<Response> {
        res.headers_mut().insert(
            "x-service-version",
            HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
        );
        std::future::ready(res)
    }
    map_response(stamp as fn(Response) -> Ready<Response>)
}

#[cfg(test)]
mod tests {
    use microframework::axum::Router;
    use microframework::axum::body::Body;
    use microframework::axum::http::Request;
    use microframework::axum::routing::get;
    use microframework::tower::ServiceExt;

    #[tokio::test]
    async fn stamps_the_version() {
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(super::version_header());
        let res = app.oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(
            res.headers()["x-service-version"],
            env!("CARGO_PKG_VERSION")
        );
    }
}

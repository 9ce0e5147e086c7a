//! The framework's own endpoints: `/health/live`, `/health/ready`, `/health` and `/metrics`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use microframework_core::{AppContext, HealthReport};
use microframework_telemetry::Metrics;

fn report_response(report: HealthReport) -> Response {
    let status = if report.is_up() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::to_vec(&report).unwrap_or_default();
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Liveness: the process is up (and every liveness check passes).
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive", content_type = "application/json"),
              (status = 503, description = "A liveness check fails", content_type = "application/json")))]
async fn live(State(ctx): State<AppContext>) -> Response {
    report_response(ctx.health().liveness(ctx.lifecycle()).await)
}

/// Readiness: the service is started, not draining, and every dependency check passes.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "Ready", content_type = "application/json"),
              (status = 503, description = "Starting, draining or a dependency is down", content_type = "application/json")))]
async fn ready(State(ctx): State<AppContext>) -> Response {
    report_response(ctx.health().readiness(ctx.lifecycle()).await)
}

/// Readiness with details (the single health endpoint of older tooling).
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "Ready", content_type = "application/json"),
              (status = 503, description = "Not ready", content_type = "application/json")))]
async fn health(State(ctx): State<AppContext>) -> Response {
    report_response(ctx.health().readiness(ctx.lifecycle()).await)
}

/// The health routes, documented.
pub(crate) fn health_routes(ctx: AppContext) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(live)).routes(routes!(ready)).routes(routes!(health)).with_state(ctx)
}

/// The Prometheus endpoint at `path`.
pub(crate) fn metrics_route(path: &str, metrics: Metrics) -> axum::Router {
    axum::Router::new().route(
        path,
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                let mut res = metrics.render().into_response();
                res.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
                res
            }
        }),
    )
}

//! The framework's own endpoints: `/health/live`, `/health/ready`, `/health` and `/metrics`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use microframework_core::{AppContext, HealthReport};
use microframework_telemetry::Metrics;

/// What the health endpoints of one listener show.
#[derive(Clone)]
struct HealthState {
    ctx: AppContext,
    /// Include each failing check's error text (admin listener, dev); otherwise only names,
    /// statuses and latencies, so that internal addresses and driver messages stay private.
    details: bool,
}

fn report_response(mut report: HealthReport, details: bool) -> Response {
    if !details {
        for check in &mut report.checks {
            check.error = None;
        }
    }
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
async fn live(State(h): State<HealthState>) -> Response {
    report_response(h.ctx.health().liveness(h.ctx.lifecycle()).await, h.details)
}

/// Readiness: the service is started, not draining, and every dependency check passes.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "Ready", content_type = "application/json"),
              (status = 503, description = "Starting, draining or a dependency is down", content_type = "application/json")))]
async fn ready(State(h): State<HealthState>) -> Response {
    report_response(h.ctx.health().readiness(h.ctx.lifecycle()).await, h.details)
}

/// Readiness with details (the single health endpoint of older tooling).
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "Ready", content_type = "application/json"),
              (status = 503, description = "Not ready", content_type = "application/json")))]
async fn health(State(h): State<HealthState>) -> Response {
    report_response(h.ctx.health().readiness(h.ctx.lifecycle()).await, h.details)
}

/// The health routes, documented; `details` includes the error text of failing checks.
pub(crate) fn health_routes(ctx: AppContext, details: bool) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(health))
        .with_state(HealthState { ctx, details })
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

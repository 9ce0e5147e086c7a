//! Queries and mutations over HTTP (GraphQL over HTTP), and the GraphiQL page and assets.

use std::sync::Arc;

use async_graphql::Executor;
use async_graphql::parser::types::OperationType;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use microframework_auth::Claims;

use crate::assets;
use crate::error::codes;
use crate::router::Shared;
use crate::telemetry::selected_operation;

/// `application/graphql-response+json`, the media type of GraphQL over HTTP.
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// The media type of the response: `application/graphql-response+json` when the client asks for
/// it, `application/json` otherwise (what older clients expect).
fn response_type(headers: &HeaderMap) -> &'static str {
    let accepts = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',')
            .any(|part| part.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case(GRAPHQL_RESPONSE_JSON)))
    });
    if accepts { GRAPHQL_RESPONSE_JSON } else { JSON }
}

/// A GraphQL-shaped error response (`{"errors": [...]}`) for requests that could not be
/// executed at all. JSON bodies are left alone by the problem-details layer.
pub(crate) fn request_error(status: StatusCode, code: &str, message: &str, content_type: &'static str) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body.to_string()).into_response()
}

/// Whether a `GET {path}` gets the GraphiQL page (when it is on) rather than a query: a browser
/// asking for HTML, without a `query` parameter.
pub(crate) fn asks_for_page(headers: &HeaderMap, query: Option<&str>) -> bool {
    wants_html(headers) && !has_query_param(query)
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains("text/html"))
}

fn has_query_param(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|pair| pair == "query" || pair.starts_with("query=")))
}

/// `GET {path}`: the GraphiQL page for browsers, otherwise a query from the URL parameters.
pub(crate) async fn get<E: Executor>(State(st): State<Arc<Shared<E>>>, req: Request) -> Response {
    let ct = response_type(req.headers());
    if let Some(page) = &st.page
        && asks_for_page(req.headers(), req.uri().query())
    {
        return (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            page.clone(),
        )
            .into_response();
    }
    let mut request = match async_graphql::http::parse_query_string(req.uri().query().unwrap_or_default()) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("The URL parameters are not a valid GraphQL request: {e}");
            return request_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, &msg, ct);
        }
    };
    if request.query.trim().is_empty() {
        return request_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, "The `query` parameter is required.", ct);
    }
    // GraphQL over HTTP: GET is for queries only, so that mutations never run from a link or an
    // image tag. A document that does not parse is left to the executor, which reports why.
    let operation_name = request.operation_name.clone();
    if let Ok(doc) = request.parsed_query()
        && let Some((ty @ (OperationType::Mutation | OperationType::Subscription), _)) =
            selected_operation(doc, operation_name.as_deref())
    {
        let (status, message) = match ty {
            OperationType::Mutation => (StatusCode::METHOD_NOT_ALLOWED, "Mutations must be sent with POST."),
            _ => (StatusCode::METHOD_NOT_ALLOWED, "Subscriptions are served over WebSocket only."),
        };
        let mut res = request_error(status, codes::METHOD_NOT_ALLOWED, message, ct);
        res.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return res;
    }
    let claims = req.extensions().get::<Claims>().cloned();
    execute(&st, request, claims, ct, true).await
}

/// `POST {path}`: one operation as `application/json` (or the query text as
/// `application/graphql`).
pub(crate) async fn post<E: Executor>(State(st): State<Arc<Shared<E>>>, req: Request) -> Response {
    let ct = response_type(req.headers());
    let (parts, body) = req.into_parts();
    let media = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    // Anything but JSON is refused, which also keeps browsers from sending cross-site form
    // posts (text/plain, form-urlencoded, multipart) that skip CORS preflight.
    let json = match media.as_deref() {
        Some("application/json") => true,
        Some("application/graphql") => false,
        _ => {
            return request_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                codes::UNSUPPORTED_MEDIA_TYPE,
                "Send the GraphQL request as `Content-Type: application/json`.",
                ct,
            );
        }
    };
    let bytes = match read_body(&parts.headers, body, st.body_limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            let msg = format!("The request body exceeds the limit of {} bytes.", st.body_limit);
            return request_error(StatusCode::PAYLOAD_TOO_LARGE, codes::PAYLOAD_TOO_LARGE, &msg, ct);
        }
        Err(BodyError::Unreadable) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                codes::BAD_REQUEST,
                "The request body could not be read.",
                ct,
            );
        }
    };
    let request = if json {
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return request_error(
                StatusCode::BAD_REQUEST,
                codes::BAD_REQUEST,
                "Batched requests are not supported: send one operation per request.",
                ct,
            );
        }
        match serde_json::from_slice::<async_graphql::Request>(&bytes) {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("The request body is not a valid GraphQL request: {e}");
                return request_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, &msg, ct);
            }
        }
    } else {
        match String::from_utf8(bytes) {
            Ok(query) => async_graphql::Request::new(query),
            Err(_) => {
                return request_error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, "The query is not valid UTF-8.", ct);
            }
        }
    };
    let claims = parts.extensions.get::<Claims>().cloned();
    execute(&st, request, claims, ct, false).await
}

async fn execute<E: Executor>(
    st: &Shared<E>,
    mut request: async_graphql::Request,
    claims: Option<Claims>,
    content_type: &'static str,
    get: bool,
) -> Response {
    if let Some(claims) = claims {
        request = request.data(claims);
    }
    let response = st.executor.execute(request).await;
    // With application/graphql-response+json, a request that could not be executed at all
    // (syntax error, failed validation) is a 400; application/json keeps 200 for every GraphQL
    // response, as older clients expect.
    let not_executed = response.data == async_graphql::Value::Null && response.errors.iter().all(|e| e.path.is_empty());
    let status = if content_type == GRAPHQL_RESPONSE_JSON && not_executed && !response.errors.is_empty() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = match serde_json::to_vec(&response) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "a GraphQL response could not be serialised");
            return request_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL_SERVER_ERROR,
                crate::error::INTERNAL_MESSAGE,
                content_type,
            );
        }
    };
    let mut res = (status, [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response();
    if get
        && response.is_ok()
        && let Some(value) = response.cache_control.value()
        && let Ok(value) = HeaderValue::from_str(&value)
    {
        res.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    for (name, value) in response.http_headers.iter() {
        res.headers_mut().append(name, value.clone());
    }
    res
}

enum BodyError {
    TooLarge,
    Unreadable,
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, BodyError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut out = Vec::with_capacity(declared.map_or(0, |n| usize::try_from(n).unwrap_or(0)).min(64 * 1024));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                if out.len().saturating_add(chunk.len()) > limit {
                    return Err(BodyError::TooLarge);
                }
                out.extend_from_slice(&chunk);
            }
            Err(e) => {
                // The body limit of the default middleware surfaces as a body error.
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
                while let Some(err) = source {
                    if err.to_string().contains("length limit exceeded") {
                        return Err(BodyError::TooLarge);
                    }
                    source = err.source();
                }
                return Err(BodyError::Unreadable);
            }
        }
    }
    Ok(out)
}

/// `GET {path}/assets/{file}`.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    match assets::find(&file) {
        Some(asset) => assets::response(asset),
        None => assets::not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_the_response_type() {
        let mut h = HeaderMap::new();
        assert_eq!(response_type(&h), JSON);
        h.insert(header::ACCEPT, HeaderValue::from_static("application/graphql-response+json, application/json;q=0.9"));
        assert_eq!(response_type(&h), GRAPHQL_RESPONSE_JSON);
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json, multipart/mixed"));
        assert_eq!(response_type(&h), JSON);
    }

    #[test]
    fn detects_the_query_parameter() {
        assert!(has_query_param(Some("query=%7Ba%7D")));
        assert!(has_query_param(Some("x=1&query")));
        assert!(!has_query_param(Some("queryx=1")));
        assert!(!has_query_param(None));
    }
}

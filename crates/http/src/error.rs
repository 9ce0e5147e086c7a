//! The error type of handlers, rendered as RFC 7807 `application/problem+json`.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use microframework_core::{Error, ErrorKind, FieldError, ProblemDetails};

/// A handler error. Return `Result<T, ApiError>` and use `?` on [`microframework_core::Error`],
/// on validation errors and on anything convertible into them.
///
/// 5xx errors are logged with their internal cause; clients only see the safe message.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl ApiError {
    /// An error of `kind` with a client-facing `message`.
    pub fn new(kind: ErrorKind, message: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Self(Error::new(kind, message))
    }

    /// `404 Not Found`.
    pub fn not_found(message: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Self(Error::not_found(message))
    }

    /// `400 Bad Request`.
    pub fn bad_request(message: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Self(Error::bad_request(message))
    }

    /// `422` with field errors.
    pub fn validation(fields: Vec<FieldError>) -> Self {
        Self(Error::validation(fields))
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.kind().http_status();
        if status >= 500 {
            match self.0.cause() {
                Some(cause) => {
                    tracing::error!(error.kind = %self.0.kind(), error.cause = %cause, "{}", self.0.message())
                }
                None => tracing::error!(error.kind = %self.0.kind(), "{}", self.0.message()),
            }
        }
        problem_response(self.0.to_problem())
    }
}

/// Marks a response whose body is problem details, so that the problem layer can add the request
/// id and path without re-parsing it.
#[derive(Clone, Debug)]
pub(crate) struct ProblemMarker(pub(crate) ProblemDetails);

/// Renders problem details as a response with the right status and content type.
pub fn problem_response(problem: ProblemDetails) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = problem.to_json();
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ProblemDetails::CONTENT_TYPE));
    res.extensions_mut().insert(ProblemMarker(problem));
    res
}

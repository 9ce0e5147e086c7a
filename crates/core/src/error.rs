//! Protocol-neutral errors and RFC 7807 problem details.
//!
//! Business code returns [`Error`], which carries an [`ErrorKind`]. Each protocol maps the kind
//! to its own status: HTTP renders [`ProblemDetails`] as `application/problem+json`, gRPC maps to
//! a `tonic::Status` code.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A boxed error, as returned by component hooks and health checks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, independent of the protocol that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed (400).
    BadRequest,
    /// The request is well-formed but fails validation (422).
    Validation,
    /// No valid credentials were presented (401).
    Unauthenticated,
    /// The credentials do not allow this (403).
    PermissionDenied,
    /// The resource does not exist (404).
    NotFound,
    /// The HTTP method is not allowed on this resource (405).
    MethodNotAllowed,
    /// The request conflicts with the current state, for example a duplicate key (409).
    Conflict,
    /// The request body is larger than allowed (413).
    PayloadTooLarge,
    /// The content type is not supported (415).
    UnsupportedMediaType,
    /// The client sent too many requests (429).
    TooManyRequests,
    /// An unexpected failure inside the service (500).
    Internal,
    /// A dependency (database, broker, ...) is unavailable, or the service is draining (503).
    Unavailable,
    /// The request did not complete within its deadline (503 over HTTP, `DEADLINE_EXCEEDED` over gRPC).
    Timeout,
}

impl ErrorKind {
    /// The HTTP status code for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Validation => 422,
            Self::TooManyRequests => 429,
            Self::Internal => 500,
            Self::Unavailable | Self::Timeout => 503,
        }
    }

    /// The kind for an HTTP status code (used to classify responses produced by other layers).
    pub fn from_http_status(status: u16) -> Self {
        match status {
            401 => Self::Unauthenticated,
            403 => Self::PermissionDenied,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            408 | 504 => Self::Timeout,
            409 => Self::Conflict,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            422 => Self::Validation,
            429 => Self::TooManyRequests,
            503 => Self::Unavailable,
            400..=499 => Self::BadRequest,
            _ => Self::Internal,
        }
    }

    /// A stable, machine-readable code (`snake_case`), part of the public API contract.
    pub fn code(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Validation => "validation_failed",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooManyRequests => "too_many_requests",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
        }
    }

    /// A short human-readable summary, used as the problem `title`.
    pub fn title(self) -> &'static str {
        match self {
            Self::BadRequest => "Bad Request",
            Self::Validation => "Validation Failed",
            Self::Unauthenticated => "Unauthorized",
            Self::PermissionDenied => "Forbidden",
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::Conflict => "Conflict",
            Self::PayloadTooLarge => "Payload Too Large",
            Self::UnsupportedMediaType => "Unsupported Media Type",
            Self::TooManyRequests => "Too Many Requests",
            Self::Internal => "Internal Server Error",
            Self::Unavailable => "Service Unavailable",
            Self::Timeout => "Request Timeout",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A validation failure of one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field path, for example `email` or `address.zip`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// The error type of business code: a kind, a message safe to show to clients, optional field
/// errors and an optional internal cause (logged, never shown).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    fields: Vec<FieldError>,
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind` with a client-facing `message`.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self { kind, message: message.into(), fields: Vec::new(), source: None }
    }

    /// `404 Not Found`.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// `409 Conflict`.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// `400 Bad Request`.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// `422` with per-field errors.
    pub fn validation(fields: Vec<FieldError>) -> Self {
        Self { fields, ..Self::new(ErrorKind::Validation, "The request did not pass validation.") }
    }

    /// `503 Service Unavailable`, for a dependency that is down.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// `500`: the message shown to clients is generic; `source` is logged.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self::new(ErrorKind::Internal, "An unexpected error occurred.").with_source(source)
    }

    /// Attaches an internal cause; it is logged but never sent to clients.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Adds a field error.
    pub fn with_field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.fields.push(FieldError::new(field, message));
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The client-facing message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Field errors, if any.
    pub fn fields(&self) -> &[FieldError] {
        &self.fields
    }

    /// The internal cause, if any.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }

    /// Renders this error as problem details.
    pub fn to_problem(&self) -> ProblemDetails {
        ProblemDetails::new(self.kind, self.message.clone()).with_errors(self.fields.clone())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// RFC 7807 problem details, the body of every HTTP error (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemDetails {
    /// A URI reference that identifies the problem type.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// An explanation specific to this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request path this occurrence relates to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The stable error code (see [`ErrorKind::code`]).
    pub code: String,
    /// The request id, for correlating with logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Per-field validation errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl ProblemDetails {
    /// The media type of problem details.
    pub const CONTENT_TYPE: &'static str = "application/problem+json";

    /// A problem of `kind` with `detail`.
    pub fn new(kind: ErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::with_status(kind.http_status(), kind, detail)
    }

    /// A problem with an explicit status (kept when it differs from the kind's default).
    pub fn with_status(status: u16, kind: ErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        let detail: Cow<'static, str> = detail.into();
        Self {
            type_uri: format!("https://microframework.dev/problems/{}", kind.code().replace('_', "-")),
            title: kind.title().to_owned(),
            status,
            detail: (!detail.is_empty()).then(|| detail.into_owned()),
            instance: None,
            code: kind.code().to_owned(),
            request_id: None,
            errors: Vec::new(),
        }
    }

    /// Sets the field errors.
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// Sets the request path.
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Sets the request id.
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Serialises to JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising this plain struct cannot fail; fall back to a minimal body regardless.
        serde_json::to_vec(self).unwrap_or_else(|_| br#"{"title":"Internal Server Error","status":500}"#.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_json_has_rfc7807_members() {
        let p = ProblemDetails::new(ErrorKind::Validation, "bad")
            .with_errors(vec![FieldError::new("email", "must be an email")])
            .with_instance("/users");
        let v: serde_json::Value = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(v["type"], "https://microframework.dev/problems/validation-failed");
        assert_eq!(v["status"], 422);
        assert_eq!(v["title"], "Validation Failed");
        assert_eq!(v["detail"], "bad");
        assert_eq!(v["instance"], "/users");
        assert_eq!(v["errors"][0]["field"], "email");
    }

    #[test]
    fn status_round_trips_for_every_kind() {
        for kind in [
            ErrorKind::BadRequest,
            ErrorKind::Validation,
            ErrorKind::Unauthenticated,
            ErrorKind::PermissionDenied,
            ErrorKind::NotFound,
            ErrorKind::MethodNotAllowed,
            ErrorKind::Conflict,
            ErrorKind::PayloadTooLarge,
            ErrorKind::UnsupportedMediaType,
            ErrorKind::TooManyRequests,
            ErrorKind::Internal,
            ErrorKind::Unavailable,
        ] {
            assert_eq!(ErrorKind::from_http_status(kind.http_status()), kind);
        }
    }

    #[test]
    fn internal_error_hides_its_cause() {
        let e = Error::internal(std::io::Error::other("disk on fire"));
        assert!(!e.to_problem().detail.unwrap_or_default().contains("disk"));
        assert!(e.to_string().contains("disk on fire"));
    }
}

//! Mapping [`microframework_core::Error`] to `tonic::Status`, with standard error details.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use microframework_core::{Error, ErrorKind};

use crate::request_id::current_request_id;

/// The `domain` of the `google.rpc.ErrorInfo` detail: the namespace of the stable error codes
/// used as its `reason` (see [`ErrorKind::code`]).
pub const ERROR_DOMAIN: &str = "microframework.dev";

/// The message of `INTERNAL` statuses; the cause is logged, never sent.
pub const INTERNAL_MESSAGE: &str = "An unexpected error occurred.";

/// The gRPC code for an error kind.
///
/// | Kind | Code |
/// |------|------|
/// | `BadRequest`, `Validation`, `UnsupportedMediaType` | `INVALID_ARGUMENT` |
/// | `Unauthenticated` | `UNAUTHENTICATED` |
/// | `PermissionDenied` | `PERMISSION_DENIED` |
/// | `NotFound` | `NOT_FOUND` |
/// | `MethodNotAllowed` | `UNIMPLEMENTED` |
/// | `Conflict` | `ALREADY_EXISTS` |
/// | `PayloadTooLarge`, `TooManyRequests` | `RESOURCE_EXHAUSTED` |
/// | `Internal` | `INTERNAL` |
/// | `Unavailable` | `UNAVAILABLE` |
/// | `Timeout` | `DEADLINE_EXCEEDED` |
pub fn code_for(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::BadRequest | ErrorKind::Validation | ErrorKind::UnsupportedMediaType => Code::InvalidArgument,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::MethodNotAllowed => Code::Unimplemented,
        ErrorKind::Conflict => Code::AlreadyExists,
        ErrorKind::PayloadTooLarge | ErrorKind::TooManyRequests => Code::ResourceExhausted,
        ErrorKind::Internal => Code::Internal,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Timeout => Code::DeadlineExceeded,
        _ => Code::Unknown,
    }
}

/// The `tonic::Status` for a domain error, with the request id of the current call when there is
/// one (see [`current_request_id`]).
///
/// - The code comes from [`code_for`].
/// - The message is the error's client-facing message, except for `INTERNAL` (and unknown kinds),
///   which get a generic message; their cause is logged at `error`, as is the cause of
///   `UNAVAILABLE`.
/// - The details always hold a `google.rpc.ErrorInfo` whose `reason` is the stable code (such as
///   `not_found`), whose `domain` is [`ERROR_DOMAIN`] and whose metadata has the `request_id`
///   when known; a `google.rpc.RequestInfo` with the request id when known; and, when the error
///   has field errors, a `google.rpc.BadRequest` with one field violation each.
///
/// ```
/// use microframework_core::{Error, FieldError};
/// use microframework_grpc::status_from;
/// use tonic_types::StatusExt;
///
/// let status = status_from(&Error::validation(vec![FieldError::new("email", "must be an email")]));
/// assert_eq!(status.code(), tonic::Code::InvalidArgument);
/// assert_eq!(status.get_details_error_info().unwrap().reason, "validation_failed");
/// let bad = status.get_details_bad_request().unwrap();
/// assert_eq!(bad.field_violations[0].field, "email");
/// ```
pub fn status_from(err: &Error) -> Status {
    let id = current_request_id();
    status_with_request_id(err, id.as_ref().map(|id| id.as_str()))
}

/// Like [`status_from`], with an explicit request id (or none).
pub fn status_with_request_id(err: &Error, request_id: Option<&str>) -> Status {
    let code = code_for(err.kind());
    let generic = matches!(code, Code::Internal | Code::Unknown);
    if generic || code == Code::Unavailable {
        match err.cause() {
            Some(cause) => tracing::error!(error.kind = %err.kind(), error.cause = %cause, "{}", err.message()),
            None => tracing::error!(error.kind = %err.kind(), "{}", err.message()),
        }
    }
    let message = if generic { INTERNAL_MESSAGE } else { err.message() };
    Status::with_error_details(code, message, error_details(err, request_id))
}

/// The details of the status for `err`: `ErrorInfo` (reason = the error's code, domain
/// [`ERROR_DOMAIN`], the request id in its metadata), `RequestInfo` with the request id, and a
/// `BadRequest` with the invalid fields when there are any.
pub(crate) fn error_details(err: &Error, request_id: Option<&str>) -> ErrorDetails {
    let mut metadata = HashMap::new();
    if let Some(id) = request_id {
        metadata.insert("request_id".to_owned(), id.to_owned());
    }
    let mut details = ErrorDetails::with_error_info(err.kind().code(), ERROR_DOMAIN, metadata);
    if let Some(id) = request_id {
        details.set_request_info(id, "");
    }
    if !err.fields().is_empty() {
        let violations: Vec<FieldViolation> =
            err.fields().iter().map(|f| FieldViolation::new(f.field.clone(), f.message.clone())).collect();
        details.set_bad_request(violations);
    }
    details
}

/// Converts the error of a `Result` into a `tonic::Status` with [`status_from`].
///
/// ```
/// use microframework_core::Error;
/// use microframework_grpc::IntoStatus;
///
/// fn find(id: u32) -> Result<String, Error> {
///     Err(Error::not_found(format!("no user {id}")))
/// }
///
/// let status = find(7).into_status().unwrap_err();
/// assert_eq!(status.code(), tonic::Code::NotFound);
/// assert_eq!(status.message(), "no user 7");
/// ```
pub trait IntoStatus<T> {
    /// `Ok` unchanged, `Err` mapped with [`status_from`].
    ///
    /// # Errors
    ///
    /// The mapped status when `self` is an error.
    fn into_status(self) -> Result<T, Status>;
}

impl<T, E: Into<Error>> IntoStatus<T> for Result<T, E> {
    fn into_status(self) -> Result<T, Status> {
        self.map_err(|e| status_from(&e.into()))
    }
}

/// The canonical name of a code (`OK`, `NOT_FOUND`, ...), as used in metric labels.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_id::{RequestId, scoped};

    #[test]
    fn kinds_map_to_codes_with_error_info() {
        for (err, code, reason) in [
            (Error::not_found("no such user"), Code::NotFound, "not_found"),
            (Error::conflict("taken"), Code::AlreadyExists, "conflict"),
            (Error::bad_request("bad"), Code::InvalidArgument, "bad_request"),
            (Error::new(ErrorKind::Unauthenticated, "who?"), Code::Unauthenticated, "unauthenticated"),
            (Error::new(ErrorKind::PermissionDenied, "no"), Code::PermissionDenied, "permission_denied"),
            (Error::new(ErrorKind::TooManyRequests, "slow down"), Code::ResourceExhausted, "too_many_requests"),
            (Error::unavailable("db down"), Code::Unavailable, "unavailable"),
            (Error::new(ErrorKind::Timeout, "late"), Code::DeadlineExceeded, "timeout"),
        ] {
            let status = status_from(&err);
            assert_eq!(status.code(), code, "{err}");
            assert_eq!(status.message(), err.message());
            let info = status.get_details_error_info().unwrap();
            assert_eq!(info.reason, reason);
            assert_eq!(info.domain, ERROR_DOMAIN);
            assert!(info.metadata.is_empty());
            assert!(status.get_details_bad_request().is_none());
        }
    }

    #[test]
    fn internal_errors_hide_their_message_and_cause() {
        let err = Error::new(ErrorKind::Internal, "SELECT * FROM secrets failed")
            .with_source(std::io::Error::other("disk on fire"));
        let status = status_from(&err);
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), INTERNAL_MESSAGE);
        assert_eq!(status.get_details_error_info().unwrap().reason, "internal");
    }

    #[test]
    fn request_id_comes_from_the_current_call() {
        let id = RequestId::parse("req-42").unwrap();
        let status = scoped(id, || status_from(&Error::not_found("x")));
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.metadata.get("request_id").map(String::as_str), Some("req-42"));
        assert_eq!(status.get_details_request_info().unwrap().request_id, "req-42");
    }

    #[test]
    fn validation_has_field_violations() {
        let err = Error::validation(vec![]).with_field("name", "required").with_field("age", "too small");
        let status = status_with_request_id(&err, Some("r1"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status.get_details_bad_request().unwrap();
        let fields: Vec<_> = bad.field_violations.iter().map(|v| (v.field.as_str(), v.description.as_str())).collect();
        assert_eq!(fields, [("name", "required"), ("age", "too small")]);
    }

    #[test]
    fn into_status_maps_errors() {
        let ok: Result<u8, Error> = Ok(1);
        assert_eq!(ok.into_status().unwrap(), 1);
        let err: Result<u8, microframework_auth::AuthError> = Err(microframework_auth::AuthError::Expired);
        assert_eq!(err.into_status().unwrap_err().code(), Code::Unauthenticated);
    }
}

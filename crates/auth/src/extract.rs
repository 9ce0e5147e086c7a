//! axum integration (feature `axum`): [`Claims`] as an extractor and [`AuthRejection`].

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use microframework_core::{ErrorKind, ProblemDetails};

use crate::claims::Claims;
use crate::error::AuthError;

/// An authentication or authorisation failure, rendered as `application/problem+json` (with a
/// `WWW-Authenticate` header for 401 responses).
#[derive(Debug, Clone)]
pub struct AuthRejection {
    // Boxed to keep `Result<_, AuthRejection>` small.
    inner: Box<RejectionInner>,
}

#[derive(Debug, Clone)]
struct RejectionInner {
    problem: ProblemDetails,
    www_authenticate: Option<String>,
}

impl AuthRejection {
    /// A rejection with the given problem and optional `WWW-Authenticate` value.
    pub fn new(problem: ProblemDetails, www_authenticate: Option<String>) -> Self {
        Self { inner: Box::new(RejectionInner { problem, www_authenticate }) }
    }

    /// `401`: no verified claims on the request.
    pub fn unauthenticated() -> Self {
        AuthError::MissingToken.into()
    }

    /// `403 permission_denied` with `detail`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ProblemDetails::new(ErrorKind::PermissionDenied, detail.into()), None)
    }

    /// The problem details of the response.
    pub fn problem(&self) -> &ProblemDetails {
        &self.inner.problem
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.inner.problem.status).unwrap_or(StatusCode::UNAUTHORIZED)
    }

    /// The `WWW-Authenticate` value, if any.
    pub fn www_authenticate(&self) -> Option<&str> {
        self.inner.www_authenticate.as_deref()
    }
}

impl From<AuthError> for AuthRejection {
    fn from(err: AuthError) -> Self {
        let www = (err.status() == 401).then(|| err.www_authenticate());
        Self::new(err.to_problem(), www)
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let status = self.status();
        let RejectionInner { problem, www_authenticate } = *self.inner;
        let mut response = (status, problem.to_json()).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(ProblemDetails::CONTENT_TYPE));
        if let Some(value) = www_authenticate.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// Reads the [`Claims`] the HTTP layer stored in the request extensions after verifying the
/// token; without them the request is rejected with `401` and `WWW-Authenticate: Bearer`.
impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Claims>().cloned().ok_or_else(AuthRejection::unauthenticated)
    }
}

/// `Option<Claims>`: `None` for anonymous requests.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Claims {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Claims>().cloned())
    }
}

/// `Ok` when `claims` has `role`, else a `403 permission_denied` rejection.
///
/// ```
/// use microframework_auth::{require_role, Claims};
/// let claims = Claims { roles: vec!["admin".into()], ..Claims::default() };
/// assert!(require_role(&claims, "admin").is_ok());
/// assert_eq!(require_role(&claims, "root").unwrap_err().status(), 403);
/// ```
///
/// # Errors
///
/// The `403` [`AuthRejection`] when the role is missing.
pub fn require_role(claims: &Claims, role: &str) -> Result<(), AuthRejection> {
    if claims.has_role(role) {
        Ok(())
    } else {
        Err(AuthRejection::forbidden(format!("The `{}` role is required.", crate::error::client_safe(role, 64))))
    }
}

/// `Ok` when `claims` has `scope`, else a `403 permission_denied` rejection.
///
/// # Errors
///
/// The `403` [`AuthRejection`] when the scope is missing.
pub fn require_scope(claims: &Claims, scope: &str) -> Result<(), AuthRejection> {
    if claims.has_scope(scope) {
        Ok(())
    } else {
        Err(AuthRejection::forbidden(format!("The `{}` scope is required.", crate::error::client_safe(scope, 64))))
    }
}

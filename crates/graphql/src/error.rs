//! GraphQL errors with stable `extensions.code` values, and the claims of the caller.

use async_graphql::{Context, ErrorExtensions};
use microframework_auth::Claims;
use microframework_core::{Error, ErrorKind};

/// The `extensions.code` values this crate sets, following the conventions of GraphQL servers
/// (Apollo Server and others): SCREAMING_SNAKE_CASE, stable, part of the API contract.
pub mod codes {
    /// The request is malformed ([`ErrorKind::BadRequest`](microframework_core::ErrorKind::BadRequest),
    /// or an HTTP request that is not a GraphQL request).
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    /// An argument failed validation; `extensions.fields` lists `{field, message}`.
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    /// No valid credentials.
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// The credentials do not allow this.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// The resource does not exist.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// The HTTP method is not allowed (a mutation sent with `GET`).
    pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
    /// The request conflicts with the current state.
    pub const CONFLICT: &str = "CONFLICT";
    /// The request body is too large.
    pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
    /// The request body has an unsupported content type.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "UNSUPPORTED_MEDIA_TYPE";
    /// Too many requests.
    pub const TOO_MANY_REQUESTS: &str = "TOO_MANY_REQUESTS";
    /// A WebSocket `subscribe` beyond `graphql.max_subscriptions_per_connection`.
    pub const TOO_MANY_SUBSCRIPTIONS: &str = "TOO_MANY_SUBSCRIPTIONS";
    /// An unexpected failure; the message is generic and the cause is logged.
    pub const INTERNAL_SERVER_ERROR: &str = "INTERNAL_SERVER_ERROR";
    /// A dependency is unavailable, or the service is draining.
    pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
    /// The operation did not complete within its deadline.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// The query is not valid GraphQL syntax.
    pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
    /// The query does not validate against the schema, or exceeds the depth or complexity limit.
    pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
}

/// The generic message of [`codes::INTERNAL_SERVER_ERROR`].
pub const INTERNAL_MESSAGE: &str = "An unexpected error occurred.";

/// The `extensions.code` of an error kind.
pub fn code_of(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest => codes::BAD_REQUEST,
        ErrorKind::Validation => codes::BAD_USER_INPUT,
        ErrorKind::Unauthenticated => codes::UNAUTHENTICATED,
        ErrorKind::PermissionDenied => codes::FORBIDDEN,
        ErrorKind::NotFound => codes::NOT_FOUND,
        ErrorKind::MethodNotAllowed => codes::METHOD_NOT_ALLOWED,
        ErrorKind::Conflict => codes::CONFLICT,
        ErrorKind::PayloadTooLarge => codes::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => codes::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::TooManyRequests => codes::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => codes::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => codes::TIMEOUT,
        _ => codes::INTERNAL_SERVER_ERROR,
    }
}

/// Converts a business [`Error`] into a GraphQL error whose `extensions.code` is the stable code
/// of its kind (see [`codes`]).
///
/// - The message is the error's client-facing message, except for internal errors, which get a
///   generic message; their cause is logged at `error` level, never sent.
/// - Validation errors carry their field errors as `extensions.fields`: `[{field, message}]`.
///
/// ```
/// use microframework_core::Error;
/// use microframework_graphql::gql_error;
///
/// let e = gql_error(&Error::not_found("No book 42."));
/// assert_eq!(e.message, "No book 42.");
/// let code = e.extensions.as_ref().and_then(|x| x.get("code")).cloned();
/// assert_eq!(code, Some(async_graphql::Value::from("NOT_FOUND")));
///
/// let e = gql_error(&Error::internal(std::io::Error::other("disk on fire")));
/// assert_eq!(e.message, "An unexpected error occurred.");
/// ```
pub fn gql_error(e: &Error) -> async_graphql::Error {
    let code = code_of(e.kind());
    if code == codes::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "GraphQL resolver failed");
        return async_graphql::Error::new(INTERNAL_MESSAGE).extend_with(|_, ext| ext.set("code", code));
    }
    let fields: Vec<async_graphql::Value> = e
        .fields()
        .iter()
        .map(|f| {
            let mut obj = async_graphql::indexmap::IndexMap::new();
            obj.insert(async_graphql::Name::new("field"), async_graphql::Value::from(f.field.as_str()));
            obj.insert(async_graphql::Name::new("message"), async_graphql::Value::from(f.message.as_str()));
            async_graphql::Value::Object(obj)
        })
        .collect();
    async_graphql::Error::new(e.message()).extend_with(|_, ext| {
        ext.set("code", code);
        if !fields.is_empty() {
            ext.set("fields", async_graphql::Value::List(fields.clone()));
        }
    })
}

/// Turns `Result<T, microframework_core::Error>` into an `async_graphql::Result<T>` through
/// [`gql_error`].
///
/// Use it instead of `?` on business errors: async-graphql's blanket conversion from any
/// `Display` type would send the full error text, internal cause included, without a code.
///
/// ```
/// use async_graphql::{Object, Result};
/// use microframework_core::Error;
/// use microframework_graphql::IntoGqlResult;
///
/// fn find(id: u32) -> Result<String, Error> {
///     Err(Error::not_found(format!("No book {id}.")))
/// }
///
/// struct Query;
///
/// #[Object]
/// impl Query {
///     async fn book(&self, id: u32) -> Result<String> {
///         find(id).into_gql()
///     }
/// }
/// ```
pub trait IntoGqlResult<T> {
    /// Converts the error with [`gql_error`].
    fn into_gql(self) -> async_graphql::Result<T>;
}

impl<T> IntoGqlResult<T> for Result<T, Error> {
    fn into_gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| gql_error(&e))
    }
}

/// A GraphQL error with `message` and `extensions.code = code`.
pub fn coded_error(code: &str, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code))
}

/// The verified JWT claims of the caller.
///
/// Over HTTP they come from the `Authorization: Bearer` header (verified by the JWT layer of the
/// default middleware); over WebSocket from the `connection_init` payload or the upgrade
/// request's header.
///
/// # Errors
///
/// An error with `extensions.code = "UNAUTHENTICATED"` when the request carries no valid token.
///
/// ```
/// use async_graphql::{Context, Object, Result};
///
/// struct Query;
///
/// #[Object]
/// impl Query {
///     async fn me(&self, ctx: &Context<'_>) -> Result<String> {
///         let claims = microframework_graphql::claims(ctx)?;
///         Ok(claims.subject().unwrap_or_default().to_owned())
///     }
/// }
/// ```
pub fn claims<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Claims> {
    ctx.data_opt::<Claims>().ok_or_else(|| coded_error(codes::UNAUTHENTICATED, "Authentication is required."))
}

/// The caller's claims, provided they include `role`.
///
/// # Errors
///
/// `UNAUTHENTICATED` without a token, `FORBIDDEN` when the role is missing.
pub fn require_role<'a>(ctx: &Context<'a>, role: &str) -> async_graphql::Result<&'a Claims> {
    let claims = claims(ctx)?;
    if claims.has_role(role) {
        Ok(claims)
    } else {
        Err(coded_error(codes::FORBIDDEN, "This operation requires a role the caller does not have."))
    }
}

/// The caller's claims, provided their scopes include `scope`.
///
/// # Errors
///
/// `UNAUTHENTICATED` without a token, `FORBIDDEN` when the scope is missing.
pub fn require_scope<'a>(ctx: &Context<'a>, scope: &str) -> async_graphql::Result<&'a Claims> {
    let claims = claims(ctx)?;
    if claims.has_scope(scope) {
        Ok(claims)
    } else {
        Err(coded_error(codes::FORBIDDEN, "This operation requires a scope the caller does not have."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::Value;
    use microframework_core::FieldError;

    fn code(e: &async_graphql::Error) -> Option<Value> {
        e.extensions.as_ref().and_then(|x| x.get("code")).cloned()
    }

    #[test]
    fn every_kind_has_a_code() {
        let cases = [
            (Error::not_found("nope"), "NOT_FOUND", "nope"),
            (Error::conflict("dup"), "CONFLICT", "dup"),
            (Error::bad_request("bad"), "BAD_REQUEST", "bad"),
            (Error::unavailable("down"), "SERVICE_UNAVAILABLE", "down"),
            (Error::new(ErrorKind::Unauthenticated, "who"), "UNAUTHENTICATED", "who"),
            (Error::new(ErrorKind::PermissionDenied, "no"), "FORBIDDEN", "no"),
            (Error::new(ErrorKind::Timeout, "slow"), "TIMEOUT", "slow"),
            (Error::new(ErrorKind::TooManyRequests, "calm"), "TOO_MANY_REQUESTS", "calm"),
        ];
        for (e, c, m) in cases {
            let g = gql_error(&e);
            assert_eq!(code(&g), Some(Value::from(c)));
            assert_eq!(g.message, m);
        }
    }

    #[test]
    fn internal_errors_hide_their_message_and_cause() {
        let e = Error::new(ErrorKind::Internal, "password=hunter2").with_source(std::io::Error::other("disk on fire"));
        let g = gql_error(&e);
        assert_eq!(g.message, INTERNAL_MESSAGE);
        assert_eq!(code(&g), Some(Value::from("INTERNAL_SERVER_ERROR")));
        let text = serde_json::to_string(&g).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("disk"), "{text}");
    }

    #[test]
    fn validation_errors_list_their_fields() {
        let e = Error::validation(vec![FieldError::new("title", "must not be empty")]);
        let r: Result<(), Error> = Err(e);
        let g = r.into_gql().unwrap_err();
        let json = serde_json::to_value(&g).unwrap();
        assert_eq!(json["extensions"]["code"], "BAD_USER_INPUT");
        assert_eq!(json["extensions"]["fields"][0]["field"], "title");
        assert_eq!(json["extensions"]["fields"][0]["message"], "must not be empty");
    }
}

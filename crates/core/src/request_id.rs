//! The request id: one type for every protocol.
//!
//! HTTP requests, gRPC calls, GraphQL operations and WebSocket upgrades carry the same
//! [`RequestId`] in their extensions: accepted from the client's `x-request-id` header (or gRPC
//! metadata) when well-formed, generated otherwise, echoed on the response and on every log line
//! of the request. The protocol layers (`microframework_http`, `microframework_grpc`) assign it;
//! code reads it the same way whatever the protocol.

use http::{HeaderName, HeaderValue};

/// The header (and gRPC metadata key) of request ids.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request, in the request extensions (`Extension<RequestId>` in axum,
/// `request.extensions().get::<RequestId>()` in tonic).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    /// A new random id (a UUID v4, hyphenated, lowercase).
    pub fn generate() -> Self {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::new_v4().as_hyphenated().encode_lower(&mut buf);
        // One allocation that every clone shares (the request and response headers, the
        // extension): `HeaderValue::from_str` copies into a vector whose first clone allocates again.
        let shared = bytes::Bytes::from_owner(buf);
        Self(HeaderValue::from_maybe_shared(shared).unwrap_or_else(|_| HeaderValue::from_static("invalid")))
    }

    /// `value` as an id when it is safe to log and echo: 1 to 128 characters among
    /// `A-Z a-z 0-9 - _ . : / + =`.
    ///
    /// ```
    /// use microframework_core::RequestId;
    /// assert!(RequestId::parse("abc-123").is_some());
    /// assert!(RequestId::parse("has space").is_none());
    /// assert!(RequestId::parse("").is_none());
    /// ```
    pub fn parse(value: &str) -> Option<Self> {
        HeaderValue::from_str(value).ok().and_then(|v| Self::from_header(&v))
    }

    /// The client-supplied header value as an id, when it is acceptable (see [`parse`](Self::parse)).
    pub fn from_header(value: &HeaderValue) -> Option<Self> {
        let b = value.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'='));
        ok.then(|| Self(value.clone()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_safe_ids_only() {
        assert!(RequestId::parse("abc-123:x/y+z=").is_some());
        assert!(RequestId::parse("").is_none());
        assert!(RequestId::parse("has space").is_none());
        assert!(RequestId::parse(&"x".repeat(128)).is_some());
        assert!(RequestId::parse(&"x".repeat(129)).is_none());
        let id = RequestId::generate();
        assert_eq!(id.as_str().len(), 36);
        assert_ne!(id, RequestId::generate());
    }
}

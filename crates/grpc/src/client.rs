//! Clients of other gRPC services: a channel with sensible timeouts, and an interceptor that adds
//! request ids and bearer tokens to every call.

use std::time::Duration;

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::request_id::{REQUEST_ID_HEADER, RequestId, current_request_id};

/// How long establishing a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The interval of HTTP/2 keepalive pings on client connections.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a keepalive ping may go unanswered before the connection is closed.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// An endpoint for `uri` (`http://host:port`, h2c; `https` needs a TLS feature of tonic) with the
/// framework's defaults: [`CONNECT_TIMEOUT`], TCP no-delay, HTTP/2 keepalive every
/// [`KEEPALIVE_INTERVAL`] with [`KEEPALIVE_TIMEOUT`]. There is no default per-call timeout: set
/// one per call with `request.set_timeout(...)`, which sends it as the call's deadline.
///
/// # Errors
///
/// An invalid URI.
pub fn endpoint(uri: impl Into<String>) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(uri.into())?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT))
}

/// Connects to `uri` with the defaults of [`endpoint`].
///
/// ```no_run
/// # async fn demo() -> Result<(), tonic::transport::Error> {
/// let channel = microframework_grpc::connect("http://127.0.0.1:50051").await?;
/// // let client = EchoClient::with_interceptor(channel, ClientInterceptor::new());
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// An invalid URI, or the connection could not be established within [`CONNECT_TIMEOUT`].
pub async fn connect(uri: impl Into<String>) -> Result<Channel, tonic::transport::Error> {
    endpoint(uri)?.connect().await
}

/// Like [`connect`], but connects on first use (and reconnects as needed).
///
/// # Errors
///
/// An invalid URI.
pub fn connect_lazy(uri: impl Into<String>) -> Result<Channel, tonic::transport::Error> {
    Ok(endpoint(uri)?.connect_lazy())
}

/// The metadata value was not valid (not visible ASCII).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {0} metadata value")]
pub struct InvalidMetadata(&'static str);

/// An interceptor for typed clients that adds an `x-request-id` and, when set, an
/// `authorization: Bearer` token to every call.
///
/// The request id is, in order: one already set on the call; the fixed id set with
/// [`request_id`](Self::request_id); the id of the call being served by the current task (see
/// [`current_request_id`]), so that ids propagate from service to service; a new one.
///
/// ```
/// use microframework_grpc::ClientInterceptor;
/// use tonic::service::Interceptor;
///
/// let mut interceptor = ClientInterceptor::new().bearer_token("abc.def.ghi").unwrap();
/// let req = interceptor.call(tonic::Request::new(())).unwrap();
/// assert_eq!(req.metadata().get("authorization").unwrap(), "Bearer abc.def.ghi");
/// assert!(req.metadata().get("x-request-id").is_some());
/// // With a generated client: EchoClient::with_interceptor(channel, interceptor)
/// ```
#[derive(Clone, Debug, Default)]
pub struct ClientInterceptor {
    bearer: Option<AsciiMetadataValue>,
    request_id: Option<AsciiMetadataValue>,
}

impl ClientInterceptor {
    /// Adds request ids only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `token` as `authorization: Bearer <token>` (marked sensitive).
    ///
    /// # Errors
    ///
    /// [`InvalidMetadata`] when the token is not visible ASCII.
    pub fn bearer_token(mut self, token: &str) -> Result<Self, InvalidMetadata> {
        let mut value: AsciiMetadataValue =
            format!("Bearer {token}").parse().map_err(|_| InvalidMetadata("authorization"))?;
        value.set_sensitive(true);
        self.bearer = Some(value);
        Ok(self)
    }

    /// Sends `id` as the request id of every call.
    ///
    /// # Errors
    ///
    /// [`InvalidMetadata`] when `id` is not a well-formed request id (see [`RequestId::parse`]).
    pub fn request_id(mut self, id: &str) -> Result<Self, InvalidMetadata> {
        let id = RequestId::parse(id).ok_or(InvalidMetadata("x-request-id"))?;
        self.request_id = Some(ascii(&id).ok_or(InvalidMetadata("x-request-id"))?);
        Ok(self)
    }
}

fn ascii(id: &RequestId) -> Option<AsciiMetadataValue> {
    MetadataValue::try_from(id.as_str()).ok()
}

impl Interceptor for ClientInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let metadata = request.metadata_mut();
        if !metadata.contains_key(REQUEST_ID_HEADER.as_str()) {
            let id = match &self.request_id {
                Some(id) => Some(id.clone()),
                None => ascii(&current_request_id().unwrap_or_else(RequestId::generate)),
            };
            if let Some(id) = id {
                metadata.insert("x-request-id", id);
            }
        }
        if let Some(bearer) = &self.bearer
            && !metadata.contains_key("authorization")
        {
            metadata.insert("authorization", bearer.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_id::scoped;

    #[test]
    fn propagates_the_current_request_id() {
        let mut interceptor = ClientInterceptor::new();
        let id = RequestId::parse("upstream-1").unwrap();
        let req = scoped(id, || interceptor.call(Request::new(()))).unwrap();
        assert_eq!(req.metadata().get("x-request-id").unwrap(), "upstream-1");
        assert!(req.metadata().get("authorization").is_none());
    }

    #[test]
    fn keeps_ids_already_set() {
        let mut interceptor = ClientInterceptor::new().request_id("fixed").unwrap();
        assert_eq!(interceptor.call(Request::new(())).unwrap().metadata().get("x-request-id").unwrap(), "fixed");
        let mut req = Request::new(());
        req.metadata_mut().insert("x-request-id", "mine".parse().unwrap());
        assert_eq!(interceptor.call(req).unwrap().metadata().get("x-request-id").unwrap(), "mine");
    }

    #[test]
    fn rejects_invalid_values() {
        assert!(ClientInterceptor::new().bearer_token("a\nb").is_err());
        assert!(ClientInterceptor::new().request_id("has space").is_err());
    }

    #[test]
    fn endpoint_rejects_bad_uris() {
        assert!(endpoint("not a uri").is_err());
        assert!(endpoint("http://127.0.0.1:1").is_ok());
    }
}

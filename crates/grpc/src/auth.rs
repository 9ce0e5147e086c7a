//! JWT authentication for gRPC: verifies `authorization: Bearer ...` metadata and puts the
//! [`Claims`] in the request extensions, where handlers read them with [`claims`].
//!
//! - A call with an invalid token (expired, forged, `alg: none`, wrong issuer or audience) is
//!   answered with `UNAUTHENTICATED` (`UNAVAILABLE` when the signing keys cannot be loaded), as a
//!   trailers-only response carrying a `google.rpc.ErrorInfo` (see [`status_from`](crate::status_from)).
//! - A call without a token passes through, unless [`JwtConfig::required`] is set and its path
//!   (`/package.Service/Method`) is not in [`JwtConfig::public_paths`] (`/package.Service/*`
//!   exempts a whole service).
//! - The health and reflection services are always exempt.

use http::Response;
use tonic::Status;
use tower::Layer;

use microframework_auth::gate::{Gate, GateLayer, GateService, Reject};
use microframework_auth::{AuthError, Claims, JwtConfig, JwtVerifier};

use crate::request_id::RequestId;
use crate::status::status_with_request_id;

/// Path prefixes never authenticated: the health and reflection services.
pub const EXEMPT_PREFIXES: [&str; 3] =
    ["/grpc.health.v1.Health/", "/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/"];

/// The verified claims of the call.
///
/// ```ignore
/// async fn say(&self, req: Request<SayRequest>) -> Result<Response<SayReply>, Status> {
///     let claims = microframework_grpc::claims(&req)?;
///     let user = claims.subject().unwrap_or_default();
///     // ...
/// }
/// ```
///
/// # Errors
///
/// `UNAUTHENTICATED` when the call carried no verified token.
pub fn claims<T>(request: &tonic::Request<T>) -> Result<&Claims, Status> {
    request.extensions().get::<Claims>().ok_or_else(|| {
        let err: microframework_core::Error = AuthError::MissingToken.into();
        let id = request.extensions().get::<RequestId>();
        status_with_request_id(&err, id.map(RequestId::as_str))
    })
}

/// Layer that verifies bearer tokens: the protocol-neutral [`Gate`] with gRPC's refusal (a
/// trailers-only status with the request id).
#[derive(Clone, Debug)]
pub struct JwtAuthLayer {
    gate: Gate,
}

impl JwtAuthLayer {
    /// A layer over `verifier`, with `config`'s [`required`](JwtConfig::required) and
    /// [`public_paths`](JwtConfig::public_paths). When `config` is not
    /// [`enabled`](JwtConfig::enabled), tokens are ignored.
    pub fn new(verifier: JwtVerifier, config: JwtConfig) -> Self {
        let exempt = EXEMPT_PREFIXES.iter().map(|p| format!("{p}*"));
        Self { gate: Gate::new(verifier, config).exempt(exempt) }
    }

    pub(crate) fn gate(&self) -> &Gate {
        &self.gate
    }
}

impl<S> Layer<S> for JwtAuthLayer {
    type Service = JwtAuth<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GateLayer::new(Some(self.gate.clone()), StatusReject).layer(inner)
    }
}

/// Service of [`JwtAuthLayer`] (a pass-through when built without a verifier).
pub type JwtAuth<S> = GateService<S, StatusReject>;

/// gRPC's answer to a refused call: `UNAUTHENTICATED` (`UNAVAILABLE` when the signing keys
/// cannot be loaded) as a trailers-only response carrying the request id.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatusReject;

impl<B: Default> Reject<B> for StatusReject {
    fn reject(&self, err: &AuthError, extensions: &http::Extensions) -> Response<B> {
        let err: microframework_core::Error = err.clone().into();
        status_with_request_id(&err, extensions.get::<RequestId>().map(RequestId::as_str)).into_http()
    }
}

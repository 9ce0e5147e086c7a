//! The interceptor stack: tower layers over the HTTP/2 requests of gRPC calls.
//!
//! From the outside in: [request id](crate::request_id::RequestIdLayer) → [span, metrics and
//! error logs](ObserveLayer) → [rate limit per client address](RateLimitLayer) (when
//! configured) → [JWT authentication](crate::auth::JwtAuthLayer) (when configured) → [rate limit
//! per subject](RateLimitLayer) → [deadline](DeadlineLayer) → [per-connection concurrency
//! limit](ConcurrencyLimitLayer) → [request message size limit](DecodeLimitLayer) → [response
//! message size limit](EncodeLimitLayer) → your layers → the services.
//! [`GrpcBuilder::build`](crate::GrpcBuilder::build) assembles it from the `grpc` section.

mod deadline;
mod encode_limit;
mod limit;
mod observe;
mod rate_limit;

pub use deadline::{Deadline, DeadlineBody, DeadlineFuture, DeadlineLayer, GRPC_TIMEOUT_HEADER, parse_grpc_timeout};
pub use encode_limit::{EncodeLimit, EncodeLimitBody, EncodeLimitFuture, EncodeLimitLayer};
pub use limit::{
    ConcurrencyLimit, ConcurrencyLimitLayer, DecodeLimit, DecodeLimitLayer, LimitBody, LimitFuture, LimitedBody,
};
pub use observe::{Observe, ObserveBody, ObserveFuture, ObserveLayer};
pub use rate_limit::{RateCheck, RateLimit, RateLimitFuture, RateLimitLayer, rate_limited};

//! The `grpc` configuration section.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use microframework_core::{AppContext, ByteSize, ConfigError, Validate, Validation};

/// The largest message size accepted in configuration: 4 GiB - 1, the largest length a gRPC
/// message frame can announce.
pub const MAX_MESSAGE_SIZE: u64 = u32::MAX as u64;

/// The `grpc` section of the service configuration.
///
/// ```yaml
/// grpc:
///   port: 50051
///   max_decoding_message_size: 4MiB
///   timeout: 30s                 # the default; null for none
///   reflection: false
/// ```
///
/// Values are read when the application is built; a reload validates them but they take effect
/// on restart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// Whether the service serves gRPC (default `true`).
    pub enabled: bool,
    /// Address to bind when gRPC has its own listener (default `127.0.0.1`; use `0.0.0.0` in
    /// containers).
    pub host: String,
    /// Port of the gRPC listener (default 50051; 0 picks a free port).
    pub port: u16,
    /// Largest request message accepted (default `4MiB`). Enforced for every service by the
    /// interceptor stack, and by each generated server built with
    /// [`with_limits!`](crate::with_limits). A server built without it keeps tonic's own limit of
    /// 4 MiB, so a larger value needs `with_limits!`: the gRPC application refuses to build
    /// otherwise, naming the service.
    pub max_decoding_message_size: ByteSize,
    /// Largest response message sent (default `4MiB`). Enforced for every service by the
    /// interceptor stack: a larger message ends the call with `OUT_OF_RANGE`.
    pub max_encoding_message_size: ByteSize,
    /// Longest time a call may take on the server, streams included (default `30s`; `null` for
    /// no limit, for long-lived streams). A client's own `grpc-timeout` is always honoured; when
    /// both are set the smaller applies. Expiry answers `DEADLINE_EXCEEDED`.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Serve the server reflection service, v1 and v1alpha (default `true`).
    pub reflection: bool,
    /// Serve the standard `grpc.health.v1.Health` service, tied to readiness (default `true`).
    pub health: bool,
    /// Most calls served at once on one connection; further calls wait (default: unlimited).
    pub concurrency_limit_per_connection: Option<usize>,
    /// Interval of HTTP/2 keepalive pings to clients (default: none); a client that does not
    /// answer within 20 s is disconnected. Applied by the server that serves the router (for
    /// `Service::grpc`, on the gRPC port or on the shared port), not by the router itself.
    #[serde(with = "humantime_serde")]
    pub http2_keepalive_interval: Option<Duration>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            host: "127.0.0.1".to_owned(),
            port: 50051,
            max_decoding_message_size: ByteSize::mib(4),
            max_encoding_message_size: ByteSize::mib(4),
            timeout: Some(Duration::from_secs(30)),
            reflection: true,
            health: true,
            concurrency_limit_per_connection: None,
            http2_keepalive_interval: None,
        }
    }
}

impl Validate for GrpcConfig {
    fn validate(&self, v: &mut Validation) {
        v.check(
            self.host.parse::<std::net::IpAddr>().is_ok() || self.host == "localhost",
            "host",
            "an IP address such as 127.0.0.1 or 0.0.0.0",
        );
        for (key, size) in [
            ("max_decoding_message_size", self.max_decoding_message_size),
            ("max_encoding_message_size", self.max_encoding_message_size),
        ] {
            v.check(
                size.bytes() > 0 && size.bytes() <= MAX_MESSAGE_SIZE,
                key,
                "a size greater than 0 and below 4GiB, such as 4MiB",
            );
        }
        if let Some(timeout) = self.timeout {
            v.check(!timeout.is_zero(), "timeout", "a duration greater than 0, such as 30s, or no value");
        }
        if let Some(limit) = self.concurrency_limit_per_connection {
            v.check(limit > 0, "concurrency_limit_per_connection", "a number greater than 0, or no value");
        }
        if let Some(interval) = self.http2_keepalive_interval {
            v.check(
                interval >= Duration::from_secs(1),
                "http2_keepalive_interval",
                "a duration of at least 1s, such as 30s, or no value",
            );
        }
    }
}

/// The gRPC listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source} (is another process using the port? set grpc.port or APP_GRPC__PORT)")]
pub struct BindError {
    addr: String,
    source: std::io::Error,
}

impl GrpcConfig {
    /// The name of the configuration section.
    pub const SECTION: &'static str = "grpc";

    /// Reads and validates the `grpc` section of `ctx`, registering it for validation on reload.
    ///
    /// # Errors
    ///
    /// Every problem of the section, each with its key and source.
    pub fn from_context(ctx: &AppContext) -> Result<Self, ConfigError> {
        ctx.config().section(Self::SECTION)
    }

    /// [`max_decoding_message_size`](Self::max_decoding_message_size) in bytes, for tonic's
    /// `max_decoding_message_size` setters.
    pub fn max_decoding(&self) -> usize {
        self.max_decoding_message_size.as_usize()
    }

    /// [`max_encoding_message_size`](Self::max_encoding_message_size) in bytes, for tonic's
    /// `max_encoding_message_size` setters.
    pub fn max_encoding(&self) -> usize {
        self.max_encoding_message_size.as_usize()
    }

    /// The `host:port` address of the gRPC listener (`localhost` is bound as `127.0.0.1`).
    pub fn addr(&self) -> String {
        let host = if self.host == "localhost" { "127.0.0.1" } else { self.host.as_str() };
        if host.contains(':') { format!("[{host}]:{}", self.port) } else { format!("{host}:{}", self.port) }
    }

    /// Binds the gRPC listener at [`addr`](Self::addr).
    ///
    /// # Errors
    ///
    /// [`BindError`] naming the address and how to change it.
    pub async fn bind(&self) -> Result<TcpListener, BindError> {
        let addr = self.addr();
        TcpListener::bind(&addr).await.map_err(|source| BindError { addr, source })
    }
}

/// Applies the message size limits of a [`GrpcConfig`] to a tonic generated server.
///
/// tonic sets message limits on each generated server (`EchoServer::new(svc)
/// .max_decoding_message_size(n)`); there is no trait for it, so this macro calls both setters on
/// any generated server. Use it inside
/// [`GrpcBuilder::add_service_with`](crate::GrpcBuilder::add_service_with), which hands over the
/// configuration read at build time:
///
/// ```ignore
/// GrpcBuilder::new().add_service_with(move |cfg| with_limits!(cfg, EchoServer::new(echo)))
/// ```
///
/// The first argument is a `GrpcConfig` or a reference to one.
#[macro_export]
macro_rules! with_limits {
    ($config:expr, $server:expr $(,)?) => {{
        let config: &$crate::GrpcConfig = &$config;
        $server.max_decoding_message_size(config.max_decoding()).max_encoding_message_size(config.max_encoding())
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(cfg: &GrpcConfig) -> Vec<String> {
        let mut v = Validation::new("grpc");
        cfg.validate(&mut v);
        v.into_problems().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn defaults_are_valid() {
        let cfg = GrpcConfig::default();
        assert!(problems(&cfg).is_empty());
        assert_eq!(cfg.max_decoding(), 4 * 1024 * 1024);
        assert_eq!(cfg.addr(), "127.0.0.1:50051");
    }

    #[test]
    fn reports_every_problem() {
        let cfg = GrpcConfig {
            host: "not a host".into(),
            max_decoding_message_size: ByteSize(0),
            max_encoding_message_size: ByteSize(MAX_MESSAGE_SIZE + 1),
            timeout: Some(Duration::ZERO),
            concurrency_limit_per_connection: Some(0),
            http2_keepalive_interval: Some(Duration::from_millis(10)),
            ..GrpcConfig::default()
        };
        assert_eq!(
            problems(&cfg),
            [
                "grpc.host",
                "grpc.max_decoding_message_size",
                "grpc.max_encoding_message_size",
                "grpc.timeout",
                "grpc.concurrency_limit_per_connection",
                "grpc.http2_keepalive_interval"
            ]
        );
    }

    #[test]
    fn parses_yaml() {
        let cfg = microframework_core::Config::from_yaml(
            "grpc:\n  port: 0\n  timeout: 250ms\n  max_decoding_message_size: 1KiB\n  reflection: false\n",
        )
        .unwrap();
        let grpc: GrpcConfig = cfg.section("grpc").unwrap();
        assert_eq!(grpc.port, 0);
        assert_eq!(grpc.timeout, Some(Duration::from_millis(250)));
        assert_eq!(grpc.max_decoding(), 1024);
        assert!(!grpc.reflection);
        let bad = microframework_core::Config::from_yaml("grpc:\n  prot: 1\n").unwrap();
        assert!(bad.section::<GrpcConfig>("grpc").is_err());
    }
}

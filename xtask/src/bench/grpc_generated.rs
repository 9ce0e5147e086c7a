//! The generated gRPC service `cargo xtask bench grpc` also measures: `microframework new
//! bench-grpc --type grpc --with-database=none --with-auth=none`, exactly as a user gets it, built
//! in release against this checkout.
//!
//! It is generated into a fixed directory under the system's temporary directory (outside the
//! workspace, overwritten with `--force` on every run, so the generated code is always current)
//! and built with the workspace's target directory and lockfile, so the framework and its
//! dependencies are compiled once for both.
//!
//! The measured call is the service's unary `Get` of one user, created once after start-up
//! through its `Create` method (the `none` database keeps users in memory). The reply must be
//! byte-for-byte the user `Get` returned right after `Create`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use prost::Message as _;
use prost::bytes::Bytes;

use super::grpc_load::{self, Call};

/// The generated service's name (and binary).
pub(crate) const NAME: &str = "bench-grpc";
/// Its gRPC package and service.
const SERVICE_PATH: &str = "/bench_grpc.v1.Users";
/// The name of the user the benchmark reads.
const USER_NAME: &str = "bench user";
/// The longest seeding may take.
const SEED_TIMEOUT: Duration = Duration::from_secs(5);

/// `bench_grpc.v1.CreateUserRequest`, the fields the benchmark sets.
#[derive(Clone, PartialEq, prost::Message)]
struct CreateUserRequest {
    #[prost(string, tag = "1")]
    name: String,
}

/// `bench_grpc.v1.GetUserRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct GetUserRequest {
    #[prost(string, tag = "1")]
    id: String,
}

/// `bench_grpc.v1.User`, the fields the benchmark reads (the others are skipped when decoding).
#[derive(Clone, PartialEq, prost::Message)]
struct User {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    name: String,
}

/// `grpc.health.v1.Health/Check` for the whole server, answered `SERVING`: the readiness probe of
/// the generated service (it serves no greeter).
pub(crate) fn health_check() -> Call {
    // HealthCheckResponse { status: SERVING (1) } is field 1, varint 1.
    Call::new("/grpc.health.v1.Health/Check", Bytes::new(), Some(Bytes::from_static(&[0x08, 0x01])))
        .expect("a well-formed method path")
}

/// Generates the service with the release CLI `cli` and builds it in release; returns its
/// executable and its directory (the working directory to start it in: its `configs/`).
pub(crate) fn prepare(root: &Path, cli: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    super::generate_release(
        root,
        cli,
        "xtask-bench-grpc-generated",
        NAME,
        &["--type", "grpc", "--with-database=none", "--with-auth=none"],
    )
}

/// Creates the benchmark's user on the running service at `addr` and returns the call that reads
/// it, with the exact reply it must get.
pub(crate) async fn seed(addr: &str) -> anyhow::Result<Call> {
    let create = Call::new(
        &format!("{SERVICE_PATH}/Create"),
        CreateUserRequest { name: USER_NAME.to_owned() }.encode_to_vec(),
        None,
    )?;
    let created = grpc_load::call_once(addr, &create, SEED_TIMEOUT).await.context("creating the benchmark's user")?;
    let user = User::decode(created.clone()).context("the reply of Create is not a User")?;
    anyhow::ensure!(
        !user.id.is_empty() && user.name == USER_NAME,
        "Create answered an unexpected user (id `{}`, name `{}`)",
        user.id,
        user.name
    );
    let get = Call::new(&format!("{SERVICE_PATH}/Get"), GetUserRequest { id: user.id.clone() }.encode_to_vec(), None)?;
    let read = grpc_load::call_once(addr, &get, SEED_TIMEOUT).await.context("reading the benchmark's user")?;
    anyhow::ensure!(read == created, "Get {} answered a different user than Create did", user.id);
    Ok(Call { expect: Some(read), ..get })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_encode_as_the_generated_proto_says() {
        // Field 1, length-delimited: 0x0a, length, UTF-8.
        assert_eq!(CreateUserRequest { name: "ab".into() }.encode_to_vec(), [0x0a, 0x02, b'a', b'b']);
        assert_eq!(GetUserRequest { id: "x".into() }.encode_to_vec(), [0x0a, 0x01, b'x']);
        // Unknown fields (description, timestamps) are skipped.
        let mut user = vec![0x0a, 0x01, b'1', 0x12, 0x01, b'n'];
        user.extend([0x22, 0x03, b'2', b'0', b'2']);
        assert_eq!(User::decode(user.as_slice()).unwrap(), User { id: "1".into(), name: "n".into() });
    }

    #[test]
    fn the_health_probe_expects_serving() {
        let call = health_check();
        assert_eq!(call.path.as_str(), "/grpc.health.v1.Health/Check");
        assert!(call.request.is_empty());
        assert_eq!(call.expect.as_deref(), Some(&[0x08, 0x01][..]));
    }
}

//! Compiles the benchmark proto of `benches/servers` (`bench.v1.Greeter`) into the request and
//! reply messages of the gRPC load generator's default call (`cargo xtask bench grpc`), with
//! protox (no system `protoc`). The load generator sends pre-encoded messages through a raw-bytes
//! codec, so it needs no generated client.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = "../benches/servers/proto";
    println!("cargo:rerun-if-changed={dir}");
    let fds = protox::compile(["bench/v1/greeter.proto"], [dir])?;
    tonic_prost_build::configure().build_client(false).build_server(false).compile_fds(fds)?;
    Ok(())
}

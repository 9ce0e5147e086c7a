//! Compiles the benchmark proto of `benches/servers` (`bench.v1.Greeter`) into a tonic client for
//! the gRPC load generator (`cargo xtask bench grpc`), with protox (no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = "../benches/servers/proto";
    println!("cargo:rerun-if-changed={dir}");
    let fds = protox::compile(["bench/v1/greeter.proto"], [dir])?;
    tonic_prost_build::configure().build_client(true).build_server(false).compile_fds(fds)?;
    Ok(())
}

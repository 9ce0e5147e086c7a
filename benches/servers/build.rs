//! Compiles `proto/bench/v1/greeter.proto` with protox (no system `protoc`) into tonic server code,
//! and writes its encoded file descriptor set next to it (for `framework-grpc`'s reflection and
//! per-method metric labels).

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["bench/v1/greeter.proto"], ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("bench_v1_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().build_client(false).build_server(true).compile_fds(fds)?;
    Ok(())
}

//! Compiles the service's protos into Rust with protox, a protobuf compiler in pure
//! Rust (no `protoc` needed), and keeps their file descriptor set for server reflection.

use std::path::PathBuf;
use std::{env, fs};

const PROTO_ROOT: &str = "../../proto";
const PROTO: &str = "{{ service.name | snake_case }}/v1/service.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut compiler = protox::Compiler::new([PROTO_ROOT])?;
    compiler.include_source_info(true).open_file(PROTO)?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("file_descriptor_set.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_fds(compiler.file_descriptor_set())?;
    println!("cargo:rerun-if-changed={PROTO_ROOT}/{PROTO}");
    Ok(())
}

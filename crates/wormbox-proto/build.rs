//! Generates the gRPC code from `proto/` with protox, so no `protoc` binary
//! is needed on any build host, air-gapped or not.

use protox::prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not baked in when it is compiled: a target
    // dir shared by checkouts at different paths reuses the compiled script.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // Relative to the package, so that a target dir shared by two checkouts
    // (CI's persistent one) watches the protos of the checkout being built.
    println!("cargo:rerun-if-changed=../../proto");
    let files = ["types.proto", "archive.proto", "admin.proto", "mfa.proto", "compliance.proto"]
        .map(|f| root.join("wormbox/v1").join(f));
    let descriptors = protox::compile(files, [&root])?;
    std::fs::write(out_dir.join("wormbox_descriptor.bin"), descriptors.encode_to_vec())?;
    // Decoded by hand (src/bounded.rs), so that a message's entries are
    // counted before they are allocated.
    tonic_prost_build::configure()
        .extern_path(".wormbox.v1.IngestBatchRequest", "crate::bounded::IngestBatchRequest")
        .extern_path(".wormbox.v1.DeleteObjectsRequest", "crate::bounded::DeleteObjectsRequest")
        .extern_path(".wormbox.v1.AuditLogRequest", "crate::bounded::AuditLogRequest")
        .extern_path(".wormbox.v1.IngestRecord", "crate::bounded::IngestRecord")
        .extern_path(".wormbox.v1.PutObjectHeader", "crate::bounded::PutObjectHeader")
        .compile_fds(descriptors)?;
    Ok(())
}

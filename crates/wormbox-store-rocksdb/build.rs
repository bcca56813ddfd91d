//! Tells the crate which RocksDB its bindings were generated from, so that
//! opening a store can refuse a linked library of another version (a
//! prebuilt `librocksdb.a` from `ROCKSDB_LIB_DIR`, see scripts/rocksdb-lib.sh,
//! must be exactly the bundled source's version).

use std::path::PathBuf;

fn main() {
    // librocksdb-sys (`links = "rocksdb"`) exports its source directory; the
    // bindings come from its bundled headers unless ROCKSDB_INCLUDE_DIR
    // points elsewhere, exactly as its build script decides.
    println!("cargo:rerun-if-env-changed=ROCKSDB_INCLUDE_DIR");
    let include = match std::env::var_os("ROCKSDB_INCLUDE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let source = std::env::var_os("DEP_ROCKSDB_CARGO_MANIFEST_DIR")
                .expect("librocksdb-sys exports its source directory (a direct dependency)");
            PathBuf::from(source).join("rocksdb/include")
        }
    };
    let header = include.join("rocksdb/version.h");
    println!("cargo:rerun-if-changed={}", header.display());
    let text = std::fs::read_to_string(&header).unwrap_or_else(|e| panic!("reading {}: {e}", header.display()));
    let part = |name: &str| -> String {
        let prefix = format!("#define ROCKSDB_{name} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(|value| value.trim().to_owned())
            .unwrap_or_else(|| panic!("{} defines no ROCKSDB_{name}", header.display()))
    };
    let version = format!("{}.{}.{}", part("MAJOR"), part("MINOR"), part("PATCH"));
    println!("cargo:rustc-env=WORMBOX_ROCKSDB_BINDINGS_VERSION={version}");
}

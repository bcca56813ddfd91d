//! Repository rules checked as tests: every source file opens with `//!`, the
//! workspace's dependency edges are exactly those ARCHITECTURE.md allows, no
//! shipped code deletes a ledger entry, and the server's application layer
//! names no wire type.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    for dir in ["crates", "firmware-sim", "tests", "benches"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 20);
    let missing: Vec<_> =
        files.iter().filter(|path| !std::fs::read_to_string(path).unwrap().starts_with("//!")).collect();
    assert!(missing.is_empty(), "files without a leading //! comment: {missing:?}");
}

/// The ledger outlives every version it covers because nothing removes an
/// entry: no code outside tests deletes from the `Ledger` keyspace.
#[test]
fn no_shipped_code_deletes_a_ledger_entry() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    let offenders: Vec<_> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            // Test modules and the tamper tool edit stored state on purpose.
            let shipped = text.split("#[cfg(test)]").next().unwrap_or_default();
            let is_test_code = path.components().any(|c| c.as_os_str() == "tests")
                || path.ends_with("tests.rs")
                || path.starts_with(root().join("crates/wormbox-test-utils"));
            !is_test_code && shipped.contains("delete(Keyspace::Ledger")
        })
        .collect();
    assert!(offenders.is_empty(), "ledger entries must never be deleted: {offenders:?}");
}

/// The application layer (`wormbox-server/src/app/`) is every front end's:
/// none of its files names the gRPC crates, so that an S3 endpoint calls the
/// same operations and maps the same `AppError`.
#[test]
fn the_application_layer_names_no_wire_crate() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/wormbox-server/src/app"), &mut files);
    assert!(files.len() >= 8, "the application layer is a module of files: {files:?}");
    let offenders: Vec<_> = files
        .iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let named: Vec<_> =
                ["tonic", "prost", "wormbox_proto", "wormbox-proto"].into_iter().filter(|w| text.contains(w)).collect();
            (!named.is_empty()).then(|| format!("{}: {named:?}", path.display()))
        })
        .collect();
    assert!(offenders.is_empty(), "the application layer names wire crates: {offenders:?}");
}

/// The allowed edges between workspace crates (STYLE.md 2.3, ARCHITECTURE.md).
/// Edges allowed only as dev-dependencies: the CLI never links the server.
const DEV_ONLY: &[(&str, &str)] = &[("wormbox-cli", "wormbox-server")];

const ALLOWED: &[(&str, &[&str])] = &[
    ("wormbox-model", &[]),
    ("wormbox-store", &["wormbox-model"]),
    ("wormbox-store-rocksdb", &["wormbox-store", "wormbox-model"]),
    ("wormbox-proto", &["wormbox-model"]),
    ("wormbox-reports", &["wormbox-model", "wormbox-store"]),
    // The token crate is all that the authority and the simulator share.
    ("wormbox-token", &[]),
    ("wormbox-tokensim", &["wormbox-token"]),
    ("wormbox-mfa", &["wormbox-model", "wormbox-store", "wormbox-token"]),
    (
        "wormbox-server",
        &[
            "wormbox-model",
            "wormbox-store",
            "wormbox-store-rocksdb",
            "wormbox-proto",
            "wormbox-mfa",
            "wormbox-reports",
            "wormbox-token",
            "wormbox-test-utils",
        ],
    ),
    // The CLI opens RocksDB only read-only, for `verify --data-dir`.
    (
        "wormbox-cli",
        &[
            "wormbox-proto",
            "wormbox-model",
            "wormbox-reports",
            "wormbox-store",
            "wormbox-store-rocksdb",
            "wormbox-token",
            "wormbox-test-utils",
            "wormbox-tokensim",
            // Dev-only (see DEV_ONLY): the deployment test runs init and restore.
            "wormbox-server",
        ],
    ),
    (
        "wormbox-test-utils",
        &[
            "wormbox-server",
            "wormbox-store",
            "wormbox-store-rocksdb",
            "wormbox-proto",
            "wormbox-model",
            "wormbox-token",
            "wormbox-tokensim",
        ],
    ),
    (
        "wormbox-e2e",
        &[
            "wormbox-test-utils",
            "wormbox-proto",
            "wormbox-model",
            "wormbox-reports",
            "wormbox-server",
            "wormbox-store",
            "wormbox-token",
            "wormbox-tokensim",
        ],
    ),
    // The benches measure the whole stack, and raw RocksDB through the backend crate's baseline.
    (
        "wormbox-benches",
        &[
            "wormbox-store",
            "wormbox-store-rocksdb",
            "wormbox-model",
            "wormbox-proto",
            "wormbox-server",
            "wormbox-mfa",
            "wormbox-token",
        ],
    ),
];

#[test]
fn dependency_edges_match_the_architecture() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let allowed: BTreeMap<&str, BTreeSet<&str>> =
        ALLOWED.iter().map(|(name, deps)| (*name, deps.iter().copied().collect())).collect();
    let mut seen = BTreeSet::new();
    for package in metadata["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        seen.insert(name.to_owned());
        let expected = allowed.get(name).unwrap_or_else(|| panic!("{name} is not in the architecture's crate list"));
        for dep in package["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            if dep_name.starts_with("wormbox-") {
                assert!(expected.contains(dep_name), "{name} -> {dep_name} is not an allowed edge");
                if DEV_ONLY.contains(&(name, dep_name)) {
                    assert_eq!(dep["kind"].as_str(), Some("dev"), "{name} -> {dep_name} is allowed for tests only");
                }
            }
            assert!(
                dep_name != "rocksdb" || name == "wormbox-store-rocksdb",
                "only wormbox-store-rocksdb may depend on rocksdb, not {name}"
            );
            let wire = ["tonic", "prost"].contains(&dep_name);
            assert!(
                !wire
                    || [
                        "wormbox-proto",
                        "wormbox-server",
                        "wormbox-cli",
                        "wormbox-test-utils",
                        "wormbox-e2e",
                        "wormbox-benches",
                    ]
                    .contains(&name),
                "{name} must not depend on {dep_name}"
            );
        }
    }
    assert_eq!(seen.len(), ALLOWED.len(), "every crate of the architecture exists");
}

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
/// Every test docs/THREAT-MODEL.md names as the proof of a "cannot" exists,
/// so the threat model cannot drift from the suite that keeps it true.
#[test]
fn every_test_the_threat_model_names_exists() {
    let root = root();
    let model = std::fs::read_to_string(root.join("docs/THREAT-MODEL.md")).unwrap();
    let mut files = Vec::new();
    for dir in ["crates", "tests", "firmware-sim", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    let sources: Vec<String> = files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    let mut named = 0;
    for row in model.lines().filter(|l| l.starts_with("| ") && !l.starts_with("|---")) {
        let Some(proof) = row.trim_end_matches('|').rsplit('|').next() else { continue };
        for name in proof.split('`').skip(1).step_by(2).filter(|t| t.contains("::")) {
            let function = name.rsplit("::").next().unwrap();
            let defined = sources.iter().any(|s| s.contains(&format!("fn {function}(")));
            assert!(defined, "docs/THREAT-MODEL.md names `{name}`, and no test `fn {function}` exists");
            named += 1;
        }
    }
    assert!(named > 50, "the threat model names its tests ({named} found)");
}

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

/// The application layer (`crates/wormbox-app`) is every front end's: none
/// of its files names the gRPC crates, so that the S3 endpoint calls the
/// same operations and maps the same `AppError`.
#[test]
fn the_application_layer_names_no_wire_crate() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/wormbox-app/src"), &mut files);
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

/// The S3 front door calls the application layer, never a storage engine
/// or the store's backend seam, so that it cannot bypass a rule `App` keeps.
#[test]
fn the_s3_front_door_reaches_no_backend() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/wormbox-s3/src"), &mut files);
    assert!(files.len() >= 8, "the S3 front door is a crate of files: {files:?}");
    let offenders: Vec<_> = files
        .iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let named: Vec<_> = ["backend::", "Backend", "rocksdb", "tonic", "prost", "wormbox_proto"]
                .into_iter()
                .filter(|w| text.contains(w))
                .collect();
            (!named.is_empty()).then(|| format!("{}: {named:?}", path.display()))
        })
        .collect();
    assert!(offenders.is_empty(), "the S3 front door names what is not the application layer: {offenders:?}");
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
    // Replication follows the ledger through the store and copies checkpoints in the reports' file form.
    ("wormbox-replica", &["wormbox-model", "wormbox-store", "wormbox-reports", "wormbox-test-utils"]),
    // The token crate is all that the authority and the simulator share.
    ("wormbox-token", &[]),
    ("wormbox-tokensim", &["wormbox-token"]),
    ("wormbox-mfa", &["wormbox-model", "wormbox-store", "wormbox-token"]),
    // Witnesses read the ledger's checkpoints as signed notes and check its tree's proofs.
    ("wormbox-witness", &["wormbox-model", "wormbox-store"]),
    // The application layer: every front door's operations, in domain types.
    ("wormbox-app", &["wormbox-model", "wormbox-store", "wormbox-mfa", "wormbox-replica", "wormbox-reports"]),
    // The S3 front door: the application layer and its domain types only.
    ("wormbox-s3", &["wormbox-app", "wormbox-model", "wormbox-store"]),
    (
        "wormbox-server",
        &[
            "wormbox-app",
            "wormbox-s3",
            "wormbox-model",
            "wormbox-store",
            "wormbox-store-rocksdb",
            "wormbox-proto",
            "wormbox-mfa",
            "wormbox-replica",
            "wormbox-reports",
            "wormbox-token",
            "wormbox-test-utils",
            "wormbox-witness",
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
            "wormbox-witness",
            // Dev-only (see DEV_ONLY): the deployment test runs init and restore.
            "wormbox-server",
        ],
    ),
    (
        "wormbox-test-utils",
        &[
            "wormbox-server",
            // The S3 engines of the replication tests, and a client of them.
            "wormbox-replica",
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
            "wormbox-replica",
            "wormbox-reports",
            "wormbox-server",
            "wormbox-store",
            "wormbox-token",
            "wormbox-tokensim",
            "wormbox-witness",
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
            // The S3 load: the replicator's own SigV4 client.
            "wormbox-replica",
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

/// Import cycles between files of one crate that predate this check, each
/// with who removes it; a new cycle, or one of these grown, fails the test.
const KNOWN_MODULE_CYCLES: &[&[&str]] = &[];

/// The files of a crate do not import each other in a circle: each file can be
/// read knowing only what it imports. Edges are the `crate::`, `super::` and
/// child-module paths a file uses (`use` trees and inline paths), to the file
/// that defines the module named. A module's use of its own descendants is not
/// an edge (the crate root, or a parent, re-exporting its children is the
/// module tree, not a circle), and test modules (`#[cfg(test)] mod tests`,
/// `tests.rs`) are left out, since they import their parent on purpose.
#[test]
fn no_module_imports_a_cycle_of_files_inside_a_crate() {
    let mut crates: Vec<PathBuf> =
        std::fs::read_dir(root().join("crates")).unwrap().map(|e| e.unwrap().path()).collect();
    crates.push(root().join("firmware-sim"));
    crates.sort();
    let mut found: Vec<Vec<String>> = Vec::new();
    for krate in crates {
        let src = krate.join("src");
        if !src.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        // Module path of each file; `src/bin` holds separate crates.
        let modules: BTreeMap<Vec<String>, PathBuf> = files
            .into_iter()
            .filter(|path| !path.starts_with(src.join("bin")))
            .filter_map(|path| Some((module_path(&src, &path)?, path)))
            .filter(|(module, _)| module.last().is_none_or(|last| last != "tests"))
            .collect();
        let mut edges: BTreeMap<&Vec<String>, BTreeSet<&Vec<String>>> = BTreeMap::new();
        for (module, path) in &modules {
            let text = shipped_code(&std::fs::read_to_string(path).unwrap());
            for target in referenced_paths(&text) {
                let absolute = match target.first().map(String::as_str) {
                    Some("crate") => target[1..].to_vec(),
                    Some("super") => {
                        let supers = target.iter().take_while(|s| *s == "super").count();
                        let mut base = module.clone();
                        base.truncate(module.len().saturating_sub(supers));
                        base.extend_from_slice(&target[supers..]);
                        base
                    }
                    Some("self") => [module.clone(), target[1..].to_vec()].concat(),
                    // A child module named without `self::`; anything else is another crate.
                    Some(_) => [module.clone(), target.clone()].concat(),
                    None => continue,
                };
                let Some(to) = (0..=absolute.len()).rev().find_map(|n| modules.get_key_value(&absolute[..n])) else {
                    continue;
                };
                let to = to.0;
                if target.first().is_some_and(|s| !["crate", "super", "self"].contains(&s.as_str())) && to == module {
                    continue;
                }
                if !to.starts_with(module) {
                    edges.entry(module).or_default().insert(to);
                }
            }
        }
        // Files that reach each other both ways form one cycle.
        let reach = |from: &Vec<String>| {
            let mut seen = BTreeSet::new();
            let mut stack = vec![from];
            while let Some(at) = stack.pop() {
                for next in edges.get(at).into_iter().flatten() {
                    if seen.insert(*next) {
                        stack.push(next);
                    }
                }
            }
            seen
        };
        let reaches: BTreeMap<&Vec<String>, BTreeSet<&Vec<String>>> = modules.keys().map(|m| (m, reach(m))).collect();
        let mut placed = BTreeSet::new();
        for (module, reached) in &reaches {
            if placed.contains(module) || !reached.contains(module) {
                continue;
            }
            let cycle: Vec<&Vec<String>> =
                reached.iter().copied().filter(|other| reaches[other].contains(module)).collect();
            placed.extend(cycle.iter().copied());
            let relative = |m: &Vec<String>| modules[m].strip_prefix(root()).unwrap().display().to_string();
            found.push(cycle.into_iter().map(relative).collect());
        }
    }
    let known: Vec<Vec<String>> =
        KNOWN_MODULE_CYCLES.iter().map(|c| c.iter().map(|s| (*s).to_owned()).collect()).collect();
    let new: Vec<&Vec<String>> = found.iter().filter(|c| !known.contains(c)).collect();
    assert!(
        new.is_empty(),
        "files that import each other in a circle (break it, e.g. move the shared part down): {new:?}"
    );
}

/// The module path of a source file under `src` (`lib.rs` and `main.rs` are the root).
fn module_path(src: &Path, file: &Path) -> Option<Vec<String>> {
    let relative = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|last| last == "mod") || parts == ["lib"] || parts == ["main"] {
        parts.pop();
    }
    Some(parts)
}

/// A file's code without comments, inline test modules (last, by convention)
/// and items marked `#[cfg(test)]`.
fn shipped_code(text: &str) -> String {
    let mut out = String::new();
    // Inside a `#[cfg(test)]` item: its brace depth so far.
    let mut skipping: Option<i64> = None;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            if lines.peek().is_some_and(|next| next.trim_start().starts_with("mod ") && next.contains('{')) {
                break;
            }
            skipping = Some(0);
            continue;
        }
        if let Some(depth) = skipping {
            let depth = depth + line.matches('{').count() as i64 - line.matches('}').count() as i64;
            let ended = depth <= 0 && (trimmed.ends_with(';') || trimmed.ends_with('}'));
            skipping = (!ended).then_some(depth);
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Every module path `text` names: each leaf of its `use` trees, and each
/// inline `crate::…` or `super::…` path.
fn referenced_paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = text;
    // `use` statements, whole trees.
    while let Some(at) = find_use(rest) {
        let after = &rest[at..];
        let end = after.find(';').unwrap_or(after.len());
        // `a as b` becomes `a@b`, so that only the path survives removing spaces.
        let tree: String = after[..end].replace(" as ", "@").chars().filter(|c| !c.is_whitespace()).collect();
        expand_use_tree(&tree, &mut Vec::new(), &mut out);
        rest = &after[end..];
    }
    // Inline paths.
    for anchor in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(found) = text[from..].find(anchor) {
            let start = from + found;
            from = start + anchor.len();
            let before = text[..start].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String =
                text[start..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            out.push(path.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect());
        }
    }
    out
}

/// Where the tree of the next `use` statement begins (after `use `).
fn find_use(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let without_visibility = trimmed.strip_prefix("pub").map(|r| r.trim_start_matches(|c| c != ' ').trim_start());
        let statement = without_visibility.unwrap_or(trimmed);
        if let Some(tree) = statement.strip_prefix("use ") {
            return Some(offset + line.len() - tree.len());
        }
        offset += line.len();
    }
    None
}

/// Appends each leaf path of a `use` tree (whitespace removed) under `prefix`.
fn expand_use_tree(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open].split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let depth = prefix.len();
        prefix.extend(head);
        let mut level = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => level += 1,
                '}' => level -= 1,
                ',' if level == 0 => {
                    expand_use_tree(&inner[start..i], prefix, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_use_tree(&inner[start..], prefix, out);
        prefix.truncate(depth);
        return;
    }
    let leaf = tree.split('@').next().unwrap_or(tree);
    let mut path = prefix.clone();
    path.extend(leaf.split("::").filter(|s| !s.is_empty() && *s != "self" && *s != "*").map(str::to_owned));
    if !path.is_empty() {
        out.push(path);
    }
}

#!/usr/bin/env bash
# On a connected machine: makes the offline build bundle of the committed tree.
#
#   deploy/airgap/make-bundle.sh [OUT_DIR]     (default: ./dist)
#
# The bundle, wormbox-src-<version>-<commit>.tar, holds the source (git
# archive of HEAD), every crate it needs (`cargo vendor`), a .cargo/config.toml
# that replaces crates.io with the vendored copy and forbids the network,
# BUILD-REQUIREMENTS (Rust version, Debian packages) and MANIFEST, the SHA-256
# of every file. `build-offline.sh` inside it builds with no network.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
out="$(realpath -m "${1:-dist}")"
cd "$repo"

if ! git diff --quiet HEAD --; then
    echo "make-bundle: the working tree has uncommitted changes; the bundle holds HEAD only" >&2
fi
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
rust_version="$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
commit="$(git rev-parse --short=12 HEAD)"
name="wormbox-src-$version-$commit"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/$name"

mkdir -p "$stage" "$out"
git archive --format=tar HEAD | tar -x -C "$stage"
(cd "$stage" && cargo vendor --quiet --locked --versioned-dirs vendor >/dev/null)
mkdir -p "$stage/.cargo"
cat > "$stage/.cargo/config.toml" <<'TOML'
# Written by deploy/airgap/make-bundle.sh: every crate comes from ./vendor,
# and cargo never reaches for the network.
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "vendor"

[net]
offline = true
TOML
cat > "$stage/BUILD-REQUIREMENTS" <<TEXT
Wormbox $version ($commit), offline build requirements.

Rust toolchain: $rust_version or newer (this bundle was made with $(rustc --version)).
  Carry the standalone installer (rust-$rust_version-x86_64-unknown-linux-gnu.tar.xz
  from static.rust-lang.org) on the same medium if the build host has none.
Debian 12 packages (RocksDB is compiled from the vendored C++ source; bindgen
  needs libclang): build-essential clang libclang-dev
No protoc is needed (protox compiles the .proto files in Rust).

Build:   ./deploy/airgap/build-offline.sh
Output:  target/release/wormboxd, target/release/wormbox, target/release/tokensim
TEXT
(cd "$stage" && find . -type f ! -name MANIFEST -print0 | LC_ALL=C sort -z | xargs -0 sha256sum > MANIFEST)
tar -C "$work" -cf "$out/$name.tar" "$name"
(cd "$out" && sha256sum "$name.tar" > "$name.tar.sha256")
echo "$out/$name.tar"

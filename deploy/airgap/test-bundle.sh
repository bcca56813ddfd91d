#!/usr/bin/env bash
# Makes the offline bundle of HEAD, extracts it, and builds it the way the
# air-gapped side does: an empty CARGO_HOME (no registry cache, no config),
# CARGO_NET_OFFLINE=true, only the bundle's vendored crates.
#
#   deploy/airgap/test-bundle.sh           the whole release build, RocksDB's C++ compiled from
#                                          the vendored source into a scratch cache (~25 min on 2 cores)
#   deploy/airgap/test-bundle.sh --quick   the crates without RocksDB (proto code generation, token,
#                                          simulator), and the storage crate's tests linked against
#                                          this machine's prebuilt RocksDB found from the vendored source
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

tar_path="$("$repo/deploy/airgap/make-bundle.sh" "$work/dist")"
(cd "$work/dist" && sha256sum --check --quiet "$(basename "$tar_path").sha256")
tar -xf "$tar_path" -C "$work"
bundle="$work/$(basename "$tar_path" .tar)"
echo "test-bundle: $(du -sh "$tar_path" | cut -f1) bundle, $(ls "$bundle/vendor" | wc -l) vendored crates" >&2

# The air-gapped host: nothing in CARGO_HOME, no network allowed to cargo.
export CARGO_HOME="$work/cargo-home"
export CARGO_TARGET_DIR="$work/target"
mkdir -p "$CARGO_HOME"
if [ "${1:-}" = "--quick" ]; then
    (cd "$bundle" && sha256sum --check --quiet --strict MANIFEST)
    (cd "$bundle" && CARGO_NET_OFFLINE=true cargo build --locked --offline \
        -p wormbox-proto -p wormbox-token -p wormbox-tokensim)
    # The vendored librocksdb-sys is the one this machine's library was
    # compiled from (same cache key), and a build from the bundle links it
    # and opens a store with it (the library's version is checked at open).
    want="$("$repo/scripts/rocksdb-lib.sh" --key)"
    got="$("$bundle/scripts/rocksdb-lib.sh" --key)"
    [ "$got" = "$want" ] || { echo "test-bundle: the bundle's RocksDB key $got is not $want" >&2; exit 1; }
    lib="$("$bundle/scripts/rocksdb-lib.sh")"
    (cd "$bundle" && ROCKSDB_LIB_DIR="$lib" ROCKSDB_STATIC=1 CARGO_NET_OFFLINE=true \
        cargo test --quiet --locked --offline -p wormbox-store-rocksdb --lib linked)
else
    # RocksDB too is compiled from the vendored source, not taken from
    # this machine's cache.
    WORMBOX_BUILD_CACHE="$work/build-cache" "$bundle/deploy/airgap/build-offline.sh"
    for bin in wormboxd wormbox tokensim; do
        "$CARGO_TARGET_DIR/release/$bin" --version
    done
fi
echo "test-bundle: ok" >&2

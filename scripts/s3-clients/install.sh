#!/usr/bin/env bash
# Installs the real S3 clients the conformance tests (tests/e2e/s3_clients.rs)
# drive against a real wormboxd, for tests and development only:
#   - boto3, the AWS CLI, boto 2.49.0 (the seed's own client), six and pytest,
#     and `cryptography` for tools/verify_proof.py, pinned, from PyPI into a
#     venv of their own;
#   - boto 2.49.0's own integration tests: the `tests/` tree of its source
#     distribution on PyPI (`pip download`), unpacked into the venv as
#     `boto-2.49.0-tests/tests`, unmodified;
#   - rclone and python3-venv from Debian when missing (as root, or via sudo).
# Nothing is downloaded from anywhere but Debian's archive and PyPI.
# Idempotent and quiet: a second run finds everything and changes nothing.
# Each step that installs something prints how long it took.
# The venv is $WORMBOX_S3_CLIENTS, by default s3-clients-venv/ in the build
# cache that holds the prebuilt RocksDB (~/.cache/wormbox, or
# $WORMBOX_BUILD_CACHE); the tests look for it in the same place.
set -euo pipefail

venv="${WORMBOX_S3_CLIENTS:-${WORMBOX_BUILD_CACHE:-${XDG_CACHE_HOME:-${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}/.cache}/wormbox}/s3-clients-venv}"
# Tested together on Python 3.11 (Debian 12); awscli pins its botocore.
# The next five are what the vendored ceph/s3-tests import
# (tests/s3-tests/requirements.txt); the last three what the independent
# Merkle proof verifier (tools/verify_proof.py) needs for Ed25519.
pins=(boto3==1.44.8 botocore==1.44.8 awscli==1.46.3 s3transfer==0.19.3 boto==2.49.0 six==1.17.0 pytest==9.2.0
    munch==4.0.0 isodate==0.7.2 requests==2.34.2 pytz==2026.6 python-dateutil==2.9.0.post0
    cryptography==46.0.3 cffi==2.1.1 pycparser==3.12)
boto2=2.49.0

die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}
timed() { # what command...
    local what="$1" started=$SECONDS
    shift
    "$@"
    echo "s3-clients/install.sh: $what took $((SECONDS - started))s" >&2
}

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
# Debian's python3 makes venvs (with pip) only with python3-venv.
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
apt_install() {
    local log
    log="$(mktemp)"
    if ! { $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
        --no-install-recommends -o Dpkg::Use-Pty=0 "$@"; } >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -f "$log"
        die "apt-get install $* failed"
    fi
    rm -f "$log"
}
if [ ${#missing[@]} -gt 0 ]; then
    timed "apt-get install ${missing[*]}" apt_install "${missing[@]}"
fi

if [ ! -x "$venv/bin/python" ]; then
    timed "python venv $venv" python3 -m venv "$venv"
fi
# The stamp names exactly what is installed: a changed pin reinstalls.
stamp="$venv/.wormbox-pins"
if [ "$(cat "$stamp" 2>/dev/null)" != "${pins[*]}" ]; then
    pip_install() {
        "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input "$@"
    }
    timed "pip install ${pins[*]}" pip_install "${pins[@]}"
    echo "${pins[*]}" >"$stamp"
fi

tests="$venv/boto-$boto2-tests"
if [ ! -f "$tests/tests/integration/s3/test_mfa.py" ]; then
    fetch_boto2_tests() {
        local dl
        dl="$(mktemp -d)"
        "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-input \
            --no-binary :all: --no-deps -d "$dl" "boto==$boto2"
        [ -f "$dl/boto-$boto2.tar.gz" ] || die "pip download gave no boto-$boto2.tar.gz"
        rm -rf "$tests.partial"
        mkdir -p "$tests.partial"
        tar -xzf "$dl/boto-$boto2.tar.gz" -C "$tests.partial" --strip-components=1 "boto-$boto2/tests"
        rm -rf "$dl" "$tests"
        mv "$tests.partial" "$tests"
    }
    timed "boto $boto2 tests from its sdist" fetch_boto2_tests
fi

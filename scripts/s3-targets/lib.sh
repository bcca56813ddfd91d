# shellcheck shell=bash
# Sourced by the scripts in scripts/s3-targets/: where the tools are, free
# loopback ports, waiting with a deadline. Defines functions and variables only.

# The venv install.sh puts SeaweedFS (and, when the machine has none, the AWS
# CLI and boto3) in: beside the prebuilt RocksDB (scripts/rocksdb-lib.sh), in
# the per-user build cache outside the clone, so no root is needed for it.
S3T_TOOLS="${WORMBOX_S3_TOOLS:-${WORMBOX_BUILD_CACHE:-${XDG_CACHE_HOME:-${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}/.cache}/wormbox}/s3-targets}"
# shellcheck disable=SC2034 # used by install.sh
SEAWEEDFS_VERSION="4.48"

s3t_die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

# The AWS CLI: the machine's own, else the one install.sh put in the venv.
s3t_aws() {
    if command -v aws >/dev/null 2>&1; then
        command aws "$@"
    elif [ -x "$S3T_TOOLS/bin/aws" ]; then
        "$S3T_TOOLS/bin/aws" "$@"
    else
        s3t_die "no AWS CLI: run scripts/s3-targets/install.sh"
    fi
}

# A python that imports boto3.
s3t_python() {
    if python3 -c "import boto3" >/dev/null 2>&1; then
        echo python3
    elif [ -x "$S3T_TOOLS/bin/python" ] && "$S3T_TOOLS/bin/python" -c "import boto3" >/dev/null 2>&1; then
        echo "$S3T_TOOLS/bin/python"
    else
        s3t_die "no python with boto3: run scripts/s3-targets/install.sh"
    fi
}

# N distinct TCP ports that were free on 127.0.0.1 a moment ago. The kernel
# picks them (bind to port 0); they are released before the daemon binds them,
# so a caller retries its start when a daemon still loses a race for one.
s3t_free_ports() { # count
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# Polls `command...` every 0.25 s until it succeeds; fails after `seconds`.
s3t_wait() { # seconds command...
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt "$deadline" ] || return 1
        sleep 0.25
    done
}

# Whether an S3 endpoint answers HTTP at all (any status: 403 is an answer).
s3t_http_up() { # url
    python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass
PY
}

# Sends TERM to each pid, waits up to `seconds`, then KILL; returns once none
# of them exists.
s3t_stop_pids() { # seconds pid...
    local deadline=$((SECONDS + $1)) pid alive
    shift
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    while :; do
        alive=()
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
        [ ${#alive[@]} -eq 0 ] && return 0
        if [ $SECONDS -ge "$deadline" ]; then
            for pid in "${alive[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
        fi
        sleep 0.2
    done
}

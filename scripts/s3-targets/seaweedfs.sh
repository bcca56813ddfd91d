#!/usr/bin/env bash
# A one-process SeaweedFS (master, volume, filer and S3 gateway: `weed server
# -s3`) with Object Lock, for tests and development only (plain HTTP on
# loopback, no replication of its own):
#   seaweedfs.sh start DIR   start it with its data in DIR (kept across stop
#                            and start), its S3 gateway on port $S3T_S3_PORT
#                            if set; returns once the S3 gateway accepts a
#                            signed request and a volume server has joined, or
#                            fails within $SEAWEEDFS_START_TIMEOUT s (default
#                            60) with the tail of its log, leaving nothing running
#   seaweedfs.sh stop DIR    stop it; returns once the process is gone
#   seaweedfs.sh env DIR     `export` lines: endpoint, keys, region (eval them)
# Everything (data, S3 identities, log, pid file, sockets) lives under DIR
# (but for the gRPC sockets weed always puts in /tmp: stop removes them);
# every port is chosen free at each start (but for $S3T_S3_PORT), so several
# run side by side.
# Telemetry is off: it reports nothing anywhere.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"

usage() {
    echo "usage: seaweedfs.sh start DIR | stop DIR | env DIR" >&2
    exit 2
}
[ $# -eq 2 ] || usage
cmd="$1"
mkdir -p "$2"
dir="$(cd "$2" && pwd)"
weed="$S3T_TOOLS/bin/weed"

weed_pid() {
    local pid
    [ -s "$dir/run/weed.pid" ] || return 1
    pid="$(cat "$dir/run/weed.pid")"
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-dir=$dir/data" || return 1
    echo "$pid"
}

stop_() {
    local pid
    if pid="$(weed_pid)"; then
        # Its graceful stop waits about 15 s for gRPC streams to drain;
        # whatever it acknowledged is on disk already, so 5 s is enough.
        s3t_stop_pids 5 "$pid"
    fi
    drop_sockets
    rm -f "$dir/run/weed.pid" "$dir/run/s3.port"
}

# weed puts its servers' gRPC sockets in /tmp whatever it is told;
# the ports it was given say which are this DIR's.
drop_sockets() {
    local ports
    if [ -s "$dir/run/ports" ]; then
        read -r -a ports <"$dir/run/ports"
        rm -f "/tmp/seaweedfs-master-grpc-${ports[1]}.sock" "/tmp/seaweedfs-volume-grpc-${ports[3]}.sock" \
            "/tmp/seaweedfs-filer-grpc-${ports[5]}.sock" "/tmp/seaweedfs-s3-grpc-${ports[7]}.sock"
    fi
    rm -f "$dir/run/ports"
}

fail() { # message
    echo "seaweedfs.sh: $1; last lines of $dir/log/weed.log:" >&2
    tail -n 25 "$dir/log/weed.log" >&2 2>/dev/null || true
    stop_
    exit 1
}

# Ready: a volume server has joined the master, and the gateway answers a
# signed ListBuckets (it loads the identities from the filer first).
ready() { # master_port s3_port
    "$(s3t_python)" - "$@" "$dir/s3.keys" <<'PY'
import json, sys, urllib.request
master, s3, keys = sys.argv[1:]
status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{master}/dir/status", timeout=2))
nodes = [n for dc in status["Topology"].get("DataCenters") or [] for r in dc.get("Racks") or [] for n in r.get("DataNodes") or []]
assert nodes, "no volume server yet"
access, secret = open(keys).read().split()
import boto3
boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3}", aws_access_key_id=access,
             aws_secret_access_key=secret, region_name="us-east-1").list_buckets()
PY
}

start() {
    [ -x "$weed" ] || s3t_die "SeaweedFS is not installed: run scripts/s3-targets/install.sh"
    if weed_pid >/dev/null; then
        s3t_die "$dir: SeaweedFS already runs (seaweedfs.sh stop $dir first)"
    fi
    local deadline=$((SECONDS + ${SEAWEEDFS_START_TIMEOUT:-60}))
    mkdir -p "$dir"/{data,run,log}
    if [ ! -s "$dir/s3.keys" ]; then
        python3 -c "
import secrets, string
print(''.join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(20)), secrets.token_urlsafe(30))
" >"$dir/s3.keys"
    fi
    local access secret
    read -r access secret <"$dir/s3.keys"
    cat >"$dir/s3.json" <<EOF
{"identities": [{"name": "wormbox",
  "credentials": [{"accessKey": "$access", "secretKey": "$secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
    local attempt ports
    for attempt in 1 2 3; do
        read -r -a ports <<<"$(s3t_free_ports 8)"
        if [ -n "${S3T_S3_PORT:-}" ]; then
            # The S3 port asked for (a restart on the same endpoint); none
            # of the others may be that one.
            read -r -a ports <<<"$(s3t_free_ports 9 | tr ' ' '\n' | grep -vx "$S3T_S3_PORT" | head -n 8 | tr '\n' ' ')"
            ports[6]="$S3T_S3_PORT"
        fi
        # A process group of its own (setsid), so the caller's Ctrl-C or
        # exit does not reach it; stop ends it by its pid.
        setsid "$weed" server -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
            -master.port="${ports[0]}" -master.port.grpc="${ports[1]}" \
            -volume.port="${ports[2]}" -volume.port.grpc="${ports[3]}" \
            -filer.port="${ports[4]}" -filer.port.grpc="${ports[5]}" \
            -filer.localSocket="$dir/run/filer.sock" \
            -s3 -s3.port="${ports[6]}" -s3.port.grpc="${ports[7]}" -s3.config="$dir/s3.json" \
            -s3.localSocket="$dir/run/s3.sock" -s3.port.iceberg=0 -s3.port.lance=0 \
            -master.telemetry=false -master.volumeSizeLimitMB=512 -volume.max=100 -volume.preStopSeconds=0 \
            </dev/null >>"$dir/log/weed.log" 2>&1 &
        echo $! >"$dir/run/weed.pid"
        echo "${ports[*]}" >"$dir/run/ports"
        while :; do
            if ready "${ports[0]}" "${ports[6]}" >/dev/null 2>&1; then
                echo "${ports[6]}" >"$dir/run/s3.port"
                return 0
            fi
            weed_pid >/dev/null || break
            [ $SECONDS -lt "$deadline" ] || fail "SeaweedFS was not ready within the time allowed"
            sleep 0.25
        done
        # It exited: a port taken between choosing and binding it is retried.
        drop_sockets
        if [ "$attempt" -eq 3 ] || [ $SECONDS -ge "$deadline" ]; then
            fail "weed server exited"
        fi
    done
}

env_() {
    if [ ! -s "$dir/s3.keys" ] || [ ! -s "$dir/run/s3.port" ]; then
        s3t_die "$dir: SeaweedFS not started here"
    fi
    local access secret
    read -r access secret <"$dir/s3.keys"
    cat <<EOF
export WORMBOX_S3_ENGINE=seaweedfs
export AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$dir/run/s3.port")
export AWS_ACCESS_KEY_ID=$access
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_DEFAULT_REGION=us-east-1
export AWS_REGION=us-east-1
EOF
}

case "$cmd" in
    start) start ;;
    stop) stop_ ;;
    env) env_ ;;
    *) usage ;;
esac

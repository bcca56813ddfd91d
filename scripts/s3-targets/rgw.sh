#!/usr/bin/env bash
# A one-node Ceph cluster serving S3 (RGW) with Object Lock, for tests and
# development only (pools of size 1, cephx off, plain HTTP on loopback):
#   rgw.sh start DIR [--memstore]   create the cluster in DIR on first use, else
#                                   start the one DIR holds; returns once the S3
#                                   endpoint answers, or fails within
#                                   $RGW_START_TIMEOUT s (default 180) with the
#                                   tail of the log at fault, leaving nothing running
#   rgw.sh stop DIR                 stop every daemon of DIR; returns once none runs
#   rgw.sh env DIR                  `export` lines: endpoint, keys, region (eval them)
#   rgw.sh admin DIR ARGS...        radosgw-admin against DIR's cluster
# One mon, one mgr, one OSD, radosgw, all on 127.0.0.1. The OSD is bluestore
# on a sparse file in DIR, so the data survives stop then start of the same
# DIR; --memstore keeps it in memory instead: a little faster, lost at stop,
# and such a DIR cannot be started again. Everything (configuration, keyring, data, logs, pid files,
# admin sockets) lives under DIR; nothing is read from or written to
# /etc/ceph or /var/lib/ceph, so clusters in different DIRs run side by side.
# The mon's and radosgw's ports are chosen free at each start (the OSD and
# the mgr pick theirs from Ceph's range, skipping busy ones); radosgw's is
# $S3T_S3_PORT instead when set (a restart on the same endpoint).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"

usage() {
    echo "usage: rgw.sh start DIR [--memstore] | stop DIR | env DIR | admin DIR ARGS..." >&2
    exit 2
}
[ $# -ge 2 ] || usage
cmd="$1"
mkdir -p "$2"
dir="$(cd "$2" && pwd)"
shift 2
conf="$dir/ceph.conf"
uid="wormbox"
daemons=(mon.a mgr.x osd.0 client.rgw)

ceph_() { timeout 30 ceph -c "$conf" --connect-timeout 10 "$@"; }
admin_() { timeout 60 radosgw-admin -c "$conf" "$@"; }

# The pid of a daemon of this DIR, if it runs (a pid file whose process is
# gone, or now another program, does not count).
daemon_pid() { # name
    local pidf="$dir/run/$1.pid" pid
    [ -s "$pidf" ] || return 1
    pid="$(cat "$pidf")"
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$conf" || return 1
    echo "$pid"
}

# radosgw, then the OSD while the mon still answers (an OSD whose mon is gone
# waits 5 s for it before it exits), then the mgr and the mon.
stop_all() {
    local group name pid pids
    for group in client.rgw osd.0 "mgr.x mon.a"; do
        pids=()
        for name in $group; do
            if pid="$(daemon_pid "$name")"; then pids+=("$pid"); fi
        done
        [ ${#pids[@]} -eq 0 ] || s3t_stop_pids 20 "${pids[@]}"
    done
    rm -f "$dir"/run/*.pid
}

# Fails start: the tail of the log at fault, then nothing left running.
fail() { # log message
    echo "rgw.sh: $2; last lines of $1:" >&2
    tail -n 25 "$1" >&2 2>/dev/null || true
    stop_all
    exit 1
}

write_conf() { # fsid mon_port rgw_port store
    cat >"$conf" <<EOF
# Written by scripts/s3-targets/rgw.sh at each start; for tests only.
[global]
fsid = $1
mon_host = v2:127.0.0.1:$2
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_msgr1 = false
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# Without this, radosgw cannot reach the mon when cephx is off (error -13).
ms_mon_client_mode = crc secure
keyring = $dir/keyring
run_dir = $dir/run
pid_file = $dir/run/\$name.pid
admin_socket = $dir/run/\$name.asok
log_file = $dir/log/\$name.log
mon_cluster_log_file = default=$dir/log/\$cluster.\$channel.log cluster=$dir/log/\$cluster.log
crash_dir = $dir/crash
exporter_sock_dir = $dir/run
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
osd_crush_chooseleaf_type = 0
mon_warn_on_pool_no_redundancy = false
mon_data_avail_warn = 2
mon_data_avail_crit = 1
[mon]
mon_data = $dir/mon/\$cluster-\$id
[mgr]
mgr_data = $dir/mgr/\$cluster-\$id
[osd]
osd_data = $dir/osd/\$cluster-\$id
osd_objectstore = $4
bluestore_block_create = true
bluestore_block_size = 10737418240
memstore_device_bytes = 2147483648
osd_memory_target = 939524096
osd_max_object_size = 134217728
[client.rgw]
rgw_data = $dir/rgw
rgw_frontends = beast endpoint=127.0.0.1:$3
rgw_enable_usage_log = false
EOF
}

# Waits until radosgw answers HTTP; fails early when it exits.
rgw_wait() { # port deadline
    local grace=$((SECONDS + 5))
    while :; do
        if daemon_pid client.rgw >/dev/null; then
            s3t_http_up "http://127.0.0.1:$1/" 2>/dev/null && return 0
        elif [ $SECONDS -ge "$grace" ]; then
            return 1
        fi
        [ $SECONDS -lt "$2" ] || return 1
        sleep 0.25
    done
}

start() {
    local store="bluestore"
    while [ $# -gt 0 ]; do
        case "$1" in
            --memstore) store="memstore" ;;
            *) usage ;;
        esac
        shift
    done
    local name
    for name in "${daemons[@]}"; do
        if daemon_pid "$name" >/dev/null; then
            s3t_die "$dir: $name already runs (rgw.sh stop $dir first)"
        fi
    done
    command -v ceph-mon >/dev/null || s3t_die "Ceph is not installed: run scripts/s3-targets/install.sh"
    local deadline=$((SECONDS + ${RGW_START_TIMEOUT:-180}))
    mkdir -p "$dir"/{run,log,crash,mon,mgr/ceph-x,osd/ceph-0,rgw}
    local fresh=false
    [ -s "$dir/fsid" ] || fresh=true
    if $fresh; then
        python3 -c "import uuid; print(uuid.uuid4())" >"$dir/fsid"
        echo "$store" >"$dir/store"
    elif [ "$store" = memstore ] && [ "$(cat "$dir/store")" != memstore ]; then
        s3t_die "$dir holds a bluestore cluster: --memstore applies to a new DIR only"
    fi
    store="$(cat "$dir/store")"
    if ! $fresh && [ "$store" = memstore ]; then
        s3t_die "$dir held a memstore cluster, whose data went at stop: start it in a new DIR"
    fi
    local fsid
    fsid="$(cat "$dir/fsid")"

    # The mon's address is in its monmap: a new port means a new monmap.
    local attempt mon_port rgw_port
    for attempt in 1 2 3; do
        read -r mon_port rgw_port <<<"$(s3t_free_ports 2)"
        if [ -n "${S3T_S3_PORT:-}" ]; then
            # The S3 port asked for (a restart on the same endpoint).
            read -r mon_port <<<"$(s3t_free_ports 2 | tr ' ' '\n' | grep -vx "$S3T_S3_PORT" | head -n 1)"
            rgw_port="$S3T_S3_PORT"
        fi
        write_conf "$fsid" "$mon_port" "$rgw_port" "$store"
        monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" \
            --clobber "$dir/run/monmap" >/dev/null
        if [ ! -d "$dir/mon/ceph-a" ]; then
            ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
            ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/run/monmap" >>"$dir/log/setup.log" 2>&1 ||
                fail "$dir/log/setup.log" "the mon's store could not be created"
        else
            ceph-mon -c "$conf" -i a --inject-monmap "$dir/run/monmap" >>"$dir/log/setup.log" 2>&1 ||
                fail "$dir/log/setup.log" "the mon's new address could not be set"
        fi
        ceph-mon -c "$conf" -i a >>"$dir/log/setup.log" 2>&1 ||
            fail "$dir/log/mon.a.log" "ceph-mon did not start"
        if s3t_wait 30 ceph_ mon stat; then
            break
        fi
        # Lost the port to someone else between choosing and binding it?
        stop_all
        [ "$attempt" -lt 3 ] || fail "$dir/log/mon.a.log" "the mon did not answer on 127.0.0.1:$mon_port"
    done

    ceph-mgr -c "$conf" -i x >>"$dir/log/setup.log" 2>&1 || fail "$dir/log/mgr.x.log" "ceph-mgr did not start"

    if $fresh; then
        local osd_uuid id
        osd_uuid="$(python3 -c "import uuid; print(uuid.uuid4())")"
        id="$(ceph_ osd new "$osd_uuid")"
        [ "$id" = 0 ] || fail "$dir/log/mon.a.log" "the new OSD got id '$id', not 0"
        ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$dir/log/setup.log" 2>&1 ||
            fail "$dir/log/osd.0.log" "the OSD's store could not be created"
    fi
    ceph-osd -c "$conf" -i 0 >>"$dir/log/setup.log" 2>&1 || fail "$dir/log/osd.0.log" "ceph-osd did not start"
    osd_up() { ceph_ osd stat -f json | python3 -c "import json,sys; sys.exit(json.load(sys.stdin)['num_up_osds'] != 1)"; }
    s3t_wait $((deadline - SECONDS)) osd_up || fail "$dir/log/osd.0.log" "the OSD did not come up"

    for attempt in 1 2 3; do
        radosgw -c "$conf" -n client.rgw >>"$dir/log/setup.log" 2>&1 || fail "$dir/log/client.rgw.log" "radosgw did not start"
        if rgw_wait "$rgw_port" "$deadline"; then
            break
        fi
        # radosgw exits when its port was taken in the meantime: a new one.
        if [ -z "${S3T_S3_PORT:-}" ] && [ "$attempt" -lt 3 ] && [ $SECONDS -lt "$deadline" ] &&
            ! daemon_pid client.rgw >/dev/null &&
            grep -q "bind" "$dir/log/client.rgw.log"; then
            read -r rgw_port <<<"$(s3t_free_ports 1)"
            write_conf "$fsid" "$mon_port" "$rgw_port" "$store"
            continue
        fi
        fail "$dir/log/client.rgw.log" "radosgw did not answer on 127.0.0.1:$rgw_port within the time allowed"
    done

    if [ ! -s "$dir/s3.keys" ]; then
        local access secret
        access="$(python3 -c "import secrets,string; print(''.join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(20)))")"
        secret="$(python3 -c "import secrets; print(secrets.token_urlsafe(30))")"
        admin_ user create --uid="$uid" --display-name="Wormbox tests" \
            --access-key="$access" --secret-key="$secret" >>"$dir/log/setup.log" 2>&1 ||
            fail "$dir/log/setup.log" "radosgw-admin user create failed"
        printf '%s %s\n' "$access" "$secret" >"$dir/s3.keys"
    fi
    echo "$rgw_port" >"$dir/run/s3.port"
}

env_() {
    if [ ! -s "$dir/s3.keys" ] || [ ! -s "$dir/run/s3.port" ]; then
        s3t_die "$dir: no cluster started here"
    fi
    local access secret
    read -r access secret <"$dir/s3.keys"
    cat <<EOF
export WORMBOX_S3_ENGINE=rgw
export WORMBOX_S3_RGW_UID=$uid
export AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$dir/run/s3.port")
export AWS_ACCESS_KEY_ID=$access
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_DEFAULT_REGION=us-east-1
export AWS_REGION=us-east-1
EOF
}

case "$cmd" in
    start) start "$@" ;;
    stop)
        [ $# -eq 0 ] || usage
        stop_all
        rm -f "$dir/run/s3.port"
        ;;
    env)
        [ $# -eq 0 ] || usage
        env_
        ;;
    admin) admin_ "$@" ;;
    *) usage ;;
esac

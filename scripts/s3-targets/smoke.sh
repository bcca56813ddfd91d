#!/usr/bin/env bash
# Smoke test of the replication tests' S3 targets (run by CI after
# install.sh): starts SeaweedFS and a one-node Ceph RGW in a scratch
# directory and proves, with boto3 (s3check.py) and the AWS CLI, that each
# enforces what the tests rely on: Object Lock COMPLIANCE retention (no
# versioned DELETE, no shorter retention), legal hold, user metadata,
# version listing, the locked version kept across a stop and start, and on
# RGW MFA Delete with a TOTP device. Then it stops both and fails if any of
# their processes is left. Prints start times and the daemons' memory.
# The scratch directory is removed on success and kept (with the daemons'
# logs) on failure; nothing runs after it exits either way.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"

root="$(mktemp -d "${TMPDIR:-/tmp}/wormbox-s3-smoke.XXXXXX")"
py="$(s3t_python)"
report=()

cleanup() {
    local status=$?
    "$here/seaweedfs.sh" stop "$root/seaweedfs" >/dev/null 2>&1 || true
    "$here/rgw.sh" stop "$root/rgw" >/dev/null 2>&1 || true
    if [ "$status" -eq 0 ]; then
        rm -rf "$root"
    else
        echo "smoke.sh: FAILED; the targets' logs are under $root/*/log" >&2
    fi
}
trap cleanup EXIT
trap "exit 130" INT TERM

now() { echo "${EPOCHREALTIME/[.,]/}"; } # microseconds
secs() { # since_us
    local us=$(($(now) - $1))
    printf '%d.%01ds' $((us / 1000000)) $((us % 1000000 / 100000))
}
timed() { # label command...
    local label="$1" t
    shift
    t="$(now)"
    "$@"
    report+=("$(printf '%-34s %s' "$label" "$(secs "$t")")")
}

# Resident memory of the processes whose pid files are given, in MiB.
rss_mib() { # pidfile...
    local total=0 f kb
    for f in "$@"; do
        kb="$(awk '/^VmRSS:/ {print $2}' "/proc/$(cat "$f")/status")"
        total=$((total + kb))
    done
    echo "$((total / 1024)) MiB"
}

# No ceph daemon, radosgw or weed started under the scratch directory runs.
none_left() {
    local left
    left="$(pgrep -af "(ceph-(mon|mgr|osd)|radosgw|weed) .*$root" || true)"
    if [ -n "$left" ]; then
        echo "smoke.sh: processes left running after stop:" >&2
        echo "$left" >&2
        exit 1
    fi
}

check() { # engine-dir-name command...
    (
        eval "$("$here/$1.sh" env "$root/$1")"
        shift
        "$@"
    )
}

echo "== SeaweedFS"
timed "seaweedfs cold start" "$here/seaweedfs.sh" start "$root/seaweedfs"
timed "seaweedfs lock checks" check seaweedfs "$py" "$here/s3check.py" lock locked-records "$root/seaweedfs.state"
timed "seaweedfs MFA Delete probe" check seaweedfs "$py" "$here/s3check.py" mfa mfa-records none 00 --expect-ignored
seaweedfs_rss="$(rss_mib "$root/seaweedfs/run/weed.pid")"
timed "seaweedfs stop" "$here/seaweedfs.sh" stop "$root/seaweedfs"
timed "seaweedfs restart" "$here/seaweedfs.sh" start "$root/seaweedfs"
check seaweedfs "$py" "$here/s3check.py" still locked-records "$root/seaweedfs.state"
"$here/seaweedfs.sh" stop "$root/seaweedfs"

echo "== Ceph RGW"
timed "rgw cold start (empty dir)" "$here/rgw.sh" start "$root/rgw"
timed "rgw lock checks" check rgw "$py" "$here/s3check.py" lock locked-records "$root/rgw.state"
# The AWS CLI signs with the same exported region and endpoint.
listed="$(check rgw s3t_aws s3api list-object-versions --bucket locked-records --prefix records/ \
    --query 'Versions[].VersionId' --output text)"
version="$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['version'])" "$root/rgw.state")"
[ "$listed" = "$version" ] || s3t_die "the AWS CLI lists versions '$listed', expected '$version'"
echo "s3check: the AWS CLI lists the locked version (aws s3api list-object-versions)"
# A TOTP device for the user; the seed is a test value, shown nowhere else.
seed="$("$py" -c "import secrets; print(secrets.token_hex(20))")"
"$here/rgw.sh" admin "$root/rgw" mfa create --uid=wormbox --totp-serial=smoke-totp --totp-seed="$seed" \
    >/dev/null
timed "rgw MFA Delete checks" check rgw "$py" "$here/s3check.py" mfa mfa-records smoke-totp "$seed"
rgw_rss="$(rss_mib "$root"/rgw/run/{mon.a,mgr.x,osd.0,client.rgw}.pid)"
timed "rgw stop" "$here/rgw.sh" stop "$root/rgw"
none_left
timed "rgw restart (bluestore, same dir)" "$here/rgw.sh" start "$root/rgw"
check rgw "$py" "$here/s3check.py" still locked-records "$root/rgw.state"
"$here/rgw.sh" stop "$root/rgw"
none_left

echo "== smoke.sh: both targets enforce Object Lock; nothing left running"
printf '  %s\n' "${report[@]}"
echo "  resident memory: seaweedfs $seaweedfs_rss; rgw (mon+mgr+osd+radosgw) $rgw_rss"

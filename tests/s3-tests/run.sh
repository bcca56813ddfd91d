#!/usr/bin/env bash
# Runs the vendored ceph/s3-tests' versioning, Object Lock and multi-object
# delete tests against a fresh wormboxd, and fails unless exactly the tests in
# expected-failures.txt fail (a listed test that passes fails the run too, so
# the list stays true) and `wormbox verify` passes afterwards. Results:
# tests/s3-conformance.md.
#
# usage: tests/s3-tests/run.sh PYTHON WORMBOXD WORMBOX [PYTEST ARGS...]
#   PYTHON    a python with requirements.txt installed (e.g. a venv's bin/python)
#   WORMBOXD  the server binary; WORMBOX the CLI (it creates the principals)
#   PYTEST ARGS are passed on (e.g. -x, or -k NAME to narrow the selection
#   further; a narrowed run only checks the tests it ran).
# Environment: WORMBOX_S3TESTS_RESULTS=FILE keeps the per-test results there;
# WORMBOX_S3TESTS_KEEP=1 keeps the temp dir (server log, config).
set -euo pipefail

if [ $# -lt 3 ]; then
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
PYTHON=$1 WORMBOXD=$2 WORMBOX=$3
shift 3
HERE=$(cd "$(dirname "$0")" && pwd)
for f in "$PYTHON" "$WORMBOXD" "$WORMBOX"; do
    [ -x "$f" ] || { echo "run.sh: $f is not an executable" >&2; exit 2; }
done
"$PYTHON" -c 'import boto3, munch, isodate, pytz, requests, dateutil, pytest' || {
    echo "run.sh: $PYTHON lacks the packages of $HERE/requirements.txt" >&2
    exit 2
}

# The selection: the suite's versioning, Object Lock and multi-object delete
# tests, by name. Lifecycle and bucket logging tests that happen to use
# versioning test those features, which Wormbox does not serve; tests marked
# fails_on_aws check Ceph-only behaviour, which AWS S3 (Wormbox's model) lacks.
SELECT='(versioning or versioned or object_lock or multi_object_delete or delete_marker or delete_objects or delete_object_version) and not lifecycle and not logging'

WORK=$(mktemp -d "${TMPDIR:-/tmp}/wormbox-s3-tests.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "${WORMBOX_S3TESTS_KEEP:-}" = 1 ]; then
        echo "run.sh: kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
GRPC_PORT=$(free_port)
S3_PORT=$(free_port)
while [ "$S3_PORT" = "$GRPC_PORT" ]; do S3_PORT=$(free_port); done

"$WORMBOXD" --data-dir "$WORK/data" --listen "127.0.0.1:$GRPC_PORT" --s3-listen "127.0.0.1:$S3_PORT" --metrics-listen 127.0.0.1:0 \
    >"$WORK/wormboxd.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    if [ -s "$WORK/data/admin.credential" ] && "$PYTHON" -c "import socket; socket.create_connection(('127.0.0.1', $S3_PORT), 1)" 2>/dev/null; then
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/wormboxd.log" >&2; echo "run.sh: wormboxd exited" >&2; exit 1; }
    sleep 0.1
done

# main places legal holds and bypasses GOVERNANCE retention, as the suite
# expects of its one main user: in Wormbox that takes the admin role (holds
# are an admin's or auditor's) and the bypass right. alt and tenant are
# ordinary writers, each a distinct owner.
principal() { # NAME ROLE [FLAGS...] -> "ACCESS_KEY SECRET"
    local name=$1 role=$2
    shift 2
    WORMBOX_CREDENTIAL=$(cat "$WORK/data/admin.credential") \
        "$WORMBOX" --endpoint "http://127.0.0.1:$GRPC_PORT" principal create "$name" --role "$role" --s3 "$@" |
        awk -F': ' '/^S3 access key id:/ {id=$2} /^S3 secret access key/ {secret=$2} END {print id, secret}'
}
read -r MAIN_KEY MAIN_SECRET <<<"$(principal s3tests-main admin --bypass-governance)"
read -r ALT_KEY ALT_SECRET <<<"$(principal s3tests-alt writer)"
read -r TENANT_KEY TENANT_SECRET <<<"$(principal s3tests-tenant writer)"
[ -n "$MAIN_SECRET" ] && [ -n "$ALT_SECRET" ] && [ -n "$TENANT_SECRET" ] ||
    { echo "run.sh: could not create the principals" >&2; exit 1; }

cat >"$WORK/s3tests.conf" <<CONF
[DEFAULT]
host = 127.0.0.1
port = $S3_PORT
is_secure = False
ssl_verify = False

[fixtures]
bucket prefix = wormbox-{random}-

[s3 main]
display_name = $MAIN_KEY
user_id = $MAIN_KEY
email = main@example.com
api_name = us-east-1
access_key = $MAIN_KEY
secret_key = $MAIN_SECRET

[s3 alt]
display_name = $ALT_KEY
user_id = $ALT_KEY
email = alt@example.com
access_key = $ALT_KEY
secret_key = $ALT_SECRET

[s3 tenant]
display_name = $TENANT_KEY
user_id = $TENANT_KEY
email = tenant@example.com
access_key = $TENANT_KEY
secret_key = $TENANT_SECRET
tenant = wormbox

# The suite reads these sections when it configures; Wormbox serves no IAM.
[iam]
email = iam@example.com
user_id = none
access_key = none
secret_key = none
display_name = none

[iam root]
access_key = none
secret_key = none
user_id = none
email = none@example.com

[iam alt root]
access_key = none
secret_key = none
user_id = none
email = none@example.com
CONF

RESULTS=${WORMBOX_S3TESTS_RESULTS:-$WORK/results.tsv}
status=0
(
    cd "$HERE"
    S3TEST_CONF="$WORK/s3tests.conf" WORMBOX_S3TESTS_RESULTS="$RESULTS" PYTHONPATH="$HERE" \
        "$PYTHON" -m pytest -p wormbox_results -p no:cacheprovider -q -rN \
        s3tests/functional/test_s3.py -k "$SELECT" -m 'not fails_on_aws' "$@"
) || status=$?
# pytest's own status says only that some test failed; the list decides.
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
    echo "run.sh: pytest could not run the suite (exit $status)" >&2
    exit 1
fi
# Whatever the suite did over S3, the archive must still verify whole.
verified=0
WORMBOX_CREDENTIAL=$(cat "$WORK/data/admin.credential") \
    "$WORMBOX" --endpoint "http://127.0.0.1:$GRPC_PORT" verify >"$WORK/verify.log" 2>&1 || verified=$?
if [ "$verified" -ne 0 ]; then
    cat "$WORK/verify.log" >&2
    echo "run.sh: wormbox verify failed after the suite" >&2
fi
# Extra pytest arguments may narrow the run: then listed tests may not run.
partial=
[ $# -eq 0 ] || partial=--partial
checked=0
"$PYTHON" "$HERE/check.py" "$RESULTS" "$HERE/expected-failures.txt" $partial || checked=$?
[ "$verified" -eq 0 ] && [ "$checked" -eq 0 ]

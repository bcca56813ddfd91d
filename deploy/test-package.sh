#!/usr/bin/env bash
# Builds the Debian package and checks it as an operator would meet it,
# without a container: installs it into a scratch root with dpkg (maintainer
# scripts included), checks files, modes, conffiles, the service user and
# state directory, rates the unit with `systemd-analyze security` (2.0 or
# better), upgrades and removes it without losing data, then runs the
# installed binaries: init with TLS, serve, the CLI over TLS, backup, stop,
# restore, serve the restored archive; the packaged token simulator
# activates an MFA device on the way.
#
#   deploy/test-package.sh        (run by scripts/dev.sh test; needs cargo-deb)
#
# The install and everything after it need root for dpkg's ownership
# changes; CI is root, anyone else gets them faked by fakeroot.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "test-package: FAIL: $*" >&2; exit 1; }
step() { echo "test-package: $*" >&2; }

if [ "${1:-}" != "--installed" ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    step "building the release binaries and the package"
    # Alone, it links the machine's prebuilt RocksDB as scripts/dev.sh does.
    if [ -z "${ROCKSDB_LIB_DIR:-}" ]; then
        ROCKSDB_LIB_DIR="$(scripts/rocksdb-lib.sh)"
        export ROCKSDB_LIB_DIR ROCKSDB_STATIC=1
    fi
    cargo build --locked --release -p wormbox-server -p wormbox-cli -p wormbox-tokensim
    cargo deb --locked -p wormbox-server --no-build --output "$work/deb" >/dev/null
    deb="$(ls "$work"/deb/wormbox_*.deb)"
    (cd "$work/deb" && sha256sum "$(basename "$deb")" > "$(basename "$deb").sha256")
    if [ "$(id -u)" = 0 ] && [ -z "${WORMBOX_TEST_FAKEROOT:-}" ]; then
        "$0" --installed "$work" "$deb"
    else
        fakeroot -- "$0" --installed "$work" "$deb"
    fi
    exit 0
fi
work="$2"
deb="$3"
daemon=""
trap 'if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; fi' EXIT

step "installing into a scratch root"
root="$work/root"
deploy/airgap/install.sh --root "$root" "$deb" >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "install"; }
expect_mode() { # path mode
    local got
    got="$(stat -c %a "$root$1")" || fail "$1 is missing"
    [ "$got" = "$2" ] || fail "$1 has mode $got, want $2"
}
expect_mode /usr/bin/wormboxd 755
expect_mode /usr/bin/wormbox 755
expect_mode /usr/bin/tokensim 755
expect_mode /etc/wormbox/wormboxd.toml 644
expect_mode /lib/systemd/system/wormboxd.service 644
expect_mode /usr/share/doc/wormbox/wormboxd.toml 644
expect_mode /var/lib/wormbox 700
grep -qx /etc/wormbox/wormboxd.toml "$root/var/lib/dpkg/info/wormbox.conffiles" || fail "the config is not a conffile"
grep -q '^wormbox:x:[0-9]*:[0-9]*:.*:/var/lib/wormbox:/usr/sbin/nologin$' "$root/etc/passwd" || fail "no wormbox system user"
uid="$(awk -F: '$1 == "wormbox" { print $3 }' "$root/etc/passwd")"
[ "$(stat -c %u "$root/var/lib/wormbox")" = "$uid" ] || fail "/var/lib/wormbox is not owned by wormbox"
[ "$uid" -lt 1000 ] || fail "wormbox is not a system user (uid $uid)"

step "rating the unit"
systemd-analyze security --offline=yes --root="$root" --threshold=20 wormboxd.service >"$work/security.txt" \
    || { cat "$work/security.txt" >&2; fail "the unit's exposure is above 2.0"; }
tail -1 "$work/security.txt" >&2
# Readiness and the watchdog (crates/wormbox-server/tests/notify.rs tests the
# daemon's side of both).
unit="$root/lib/systemd/system/wormboxd.service"
grep -qx "Type=notify" "$unit" || fail "the unit is not Type=notify"
grep -qx "NotifyAccess=main" "$unit" || fail "the unit does not take notifications from wormboxd alone"
grep -q "^WatchdogSec=[1-9]" "$unit" || fail "the unit has no watchdog"

step "upgrading and removing keep the data"
echo "record" > "$root/var/lib/wormbox/canary"
deploy/airgap/install.sh --root "$root" "$deb" >>"$work/install.log" 2>&1 || fail "reinstall"
[ -f "$root/var/lib/wormbox/canary" ] || fail "reinstalling lost data"
dpkg --root="$root" --force-script-chrootless --log=/dev/null -r wormbox >>"$work/install.log" 2>&1 || fail "remove"
[ -f "$root/var/lib/wormbox/canary" ] || fail "remove deleted data"
[ ! -e "$root/usr/bin/wormboxd" ] || fail "remove left the binary"
[ -f "$root/etc/wormbox/wormboxd.toml" ] || fail "remove deleted the config (only purge may)"
dpkg --root="$root" --force-script-chrootless --log=/dev/null -P wormbox >>"$work/install.log" 2>&1 || fail "purge"
[ -f "$root/var/lib/wormbox/canary" ] || fail "purge deleted data"
grep -q '^wormbox:' "$root/etc/passwd" || fail "purge deleted the user that owns the data"
deploy/airgap/install.sh --root "$root" "$deb" >>"$work/install.log" 2>&1 || fail "install after purge"
rm "$root/var/lib/wormbox/canary"

step "running the installed binaries with the packaged config"
export WORMBOX_LOG=warn
bin="$root/usr/bin"
data="$work/data"
config="$work/wormboxd.toml"
sed -e "s|0.0.0.0:7878|127.0.0.1:0|" -e "s|0.0.0.0:7880|127.0.0.1:0|" -e "s|/var/lib/wormbox|$data|g" "$root/etc/wormbox/wormboxd.toml" > "$config"
# The packaged metrics port (loopback 9878) may be taken on a build machine.
printf '\n[metrics]\nlisten = "127.0.0.1:0"\n' >> "$config"
"$bin/wormboxd" --config "$config" --require-initialised >"$work/early.log" 2>&1 && fail "served without init"
[ ! -e "$data/db" ] || fail "an uninitialised start created an archive"
"$bin/wormboxd" --config "$config" init --tls-name wormbox.test >"$work/init.txt" || fail "init"
grep -q "^admin credential: " "$work/init.txt" || fail "init printed no credential"
"$bin/wormboxd" --config "$config" init >/dev/null 2>&1 && fail "a second init was accepted"
for f in mfa-master.key checkpoint-signing.key admin.credential tls/server.key; do
    [ "$(stat -c %a "$data/$f")" = 600 ] || fail "$f is not 0600"
done

serves=0
serve() { # data_dir -> sets $daemon, $port and $log
    # A log per start: the background shell truncates its file only when it
    # runs, and a reused one could still show the previous daemon's port.
    serves=$((serves + 1))
    log="$work/serve-$serves.log"
    "$bin/wormboxd" --config "$config" --data-dir "$1" --require-initialised >"$log" 2>&1 &
    daemon=$!
    port=""
    for _ in $(seq 1 100); do
        port="$(sed -n 's/^wormboxd listening on .*:\([0-9]*\)$/\1/p' "$log" 2>/dev/null)"
        [ -n "$port" ] && return 0
        kill -0 "$daemon" 2>/dev/null || { cat "$log" >&2; fail "wormboxd exited"; }
        sleep 0.1
    done
    fail "wormboxd did not start"
}
stop() {
    kill -TERM "$daemon"
    wait "$daemon" || fail "wormboxd did not stop cleanly"
    daemon=""
}
cli() {
    "$bin/wormbox" --endpoint "https://localhost:$port" --ca-cert "$data/tls/ca.pem" \
        --credential-file "$data/admin.credential" "$@" || { echo "wormbox $*: failed; wormboxd said:" >&2; cat "$log" >&2; return 1; }
}
serve "$data"
cli bucket create smoke --object-lock --default-retention compliance:1d >/dev/null
echo "smoke record" > "$work/record.txt"
cli put smoke r/1 "$work/record.txt" >/dev/null
# The packaged simulator as the admin's token (2 s steps keep the two-code
# activation short): enrol, then activate with codes read off its serial line.
seed="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
cli mfa enroll --serial SMOKE00001 --seed-base32 "$seed" --step 2 >/dev/null
"$bin/tokensim" --serial SMOKE00001 --seed-base32 "$seed" --step 2 --link "$work/token" >"$work/token.log" 2>&1 &
token=$!
for _ in $(seq 1 50); do [ -e "$work/token" ] && break; sleep 0.1; done
cli --mfa "serial:$work/token#SMOKE00001" mfa activate >/dev/null || { kill "$token"; fail "activation with the simulator"; }
kill "$token"; wait "$token" 2>/dev/null || true
cli --json mfa list | grep -q '"state": *"active"' || fail "the device is not active"
cli checkpoint --out "$work/published.json" >/dev/null
cli admin backup --out "$work/backup" >/dev/null
stop

"$bin/wormboxd" --config "$config" --data-dir "$work/restored" restore --from "$work/backup" --keys "$data" \
    --published "$work/published.json" >"$work/restore.txt"
serve "$work/restored"
cli get smoke r/1 --output "$work/got.txt" >/dev/null
cmp -s "$work/record.txt" "$work/got.txt" || fail "the restored record differs"
stop
step "ok: $(basename "$deb")"

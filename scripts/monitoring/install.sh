#!/usr/bin/env bash
# promtool, from Debian's prometheus package, for the tests of
# deploy/monitoring/ (alert rules checked and unit-tested, dashboard queries
# parsed). The package's files are unpacked under the cache and nothing is
# installed system-wide: installing the package would also enable and start a
# Prometheus server on the machine. Idempotent; prints promtool's path.
set -euo pipefail
cache="${XDG_CACHE_HOME:-$HOME/.cache}/wormbox/prometheus"
promtool="$cache/root/usr/bin/promtool"
if [ ! -x "$promtool" ]; then
    mkdir -p "$cache"
    cd "$cache"
    if ! ls prometheus_*.deb >/dev/null 2>&1; then
        apt-get download prometheus >&2 || { [ "$(id -u)" -eq 0 ] && apt-get update -q >&2 && apt-get download prometheus >&2; }
    fi
    rm -rf root
    dpkg-deb -x prometheus_*.deb root
fi
"$promtool" --version >&2
echo "$promtool"

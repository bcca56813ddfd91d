#!/usr/bin/env bash
# Installs the Debian package on the air-gapped host. Idempotent (installing
# the same package again changes nothing; a newer one upgrades, keeping
# /var/lib/wormbox), checks the package's SHA-256 before touching anything,
# and never reaches the network.
#
#   deploy/airgap/install.sh wormbox_<version>_amd64.deb     (its .sha256 beside it)
#   deploy/airgap/install.sh --root DIR PACKAGE.deb          (a scratch root, for tests)
set -euo pipefail
root=""
if [ "${1:-}" = "--root" ]; then
    root="$(realpath -m "$2")"
    shift 2
fi
deb="${1:?usage: install.sh [--root DIR] PACKAGE.deb}"
sum="$deb.sha256"
if [ ! -f "$sum" ]; then
    echo "install: $sum is missing; refusing a package whose origin cannot be checked" >&2
    exit 1
fi
(cd "$(dirname "$deb")" && sha256sum --check --quiet --strict "$(basename "$sum")")
if [ -z "$root" ]; then
    exec dpkg -i "$deb"
fi
# A scratch root: dpkg's own database and the files the maintainer scripts
# read; the scripts honour $DPKG_ROOT and run without chroot.
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc"
touch "$root/var/lib/dpkg/status" "$root/etc/passwd" "$root/etc/group" "$root/etc/shadow" "$root/etc/gshadow"
exec dpkg --root="$root" --force-script-chrootless --force-depends --log=/dev/null -i "$deb"

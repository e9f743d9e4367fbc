#!/usr/bin/env bash
# Builds trainq's base image (Debian bookworm, Python 3.11 with pip) for hosts where
# no image registry answers: debootstrap from the host's own Debian mirror, then
# `docker import`. Usage: docker/base-image.sh TAG
#
# The mirror is the first Debian archive in the host's apt sources (override with
# DEBIAN_MIRROR=...), so this works wherever `apt-get install` works.
set -euo pipefail
shopt -s inherit_errexit
tag=${1:?usage: $0 TAG}
cd "$(dirname "$0")/.."
say() { printf '%s\n' "$*" >&2; }

command -v debootstrap >/dev/null || {
  [ "$(id -u)" -eq 0 ] || { say "missing: debootstrap. Install it: sudo apt-get install -y debootstrap"; exit 1; }
  say "installing debootstrap from Debian packages..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
}
[ "$(id -u)" -eq 0 ] || { say "debootstrap needs root: run as root, or build on a host with a registry"; exit 1; }

apt_mirror() {  # the first non-security Debian archive in the host's apt sources
  local sources
  sources=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  printf '%s\n' "$sources" | awk '/^URIs:/ {print $2} /^deb / {print $2}' \
    | grep -i debian | grep -v security | head -n 1 || true
}
mirror=${DEBIAN_MIRROR:-$(apt_mirror)}
[ -n "$mirror" ] || { say "no Debian mirror in the apt sources; set DEBIAN_MIRROR"; exit 1; }

rootfs=$(mktemp -d /tmp/trainq-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
say "debootstrap bookworm from the host's Debian mirror into $rootfs (about a minute)..."
debootstrap --variant=minbase --include=python3,python3-pip,python-is-python3,ca-certificates \
  bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' - "$tag" >/dev/null
say "built $tag (debootstrap → docker import)"

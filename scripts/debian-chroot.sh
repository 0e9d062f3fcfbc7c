#!/usr/bin/env bash
# A clean Debian chroot in DIR for the packaging test: debootstrap --variant=minbase of the host's
# release (no compiler, no Swift), unpacked fresh each time from a tarball of debootstrap's output
# kept in .build/packaging (made on first use, about a minute), with the package lists updated.
# Usage: scripts/debian-chroot.sh DIR   (root; DEBIAN_MIRROR overrides deb.debian.org)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?chroot directory}
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=$root/.build/packaging
tarball=$cache/$suite-minbase.tar
if [ ! -f "$tarball" ]; then
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/debootstrap.XXXXXX")
  if ! debootstrap --variant=minbase "$suite" "$work" "$mirror" > "$cache/debootstrap.log" 2>&1; then
    tail -20 "$cache/debootstrap.log" >&2
    rm -rf "$work"
    exit 1
  fi
  tar -C "$work" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
  rm -rf "$work"
fi
mkdir -p "$dir"
tar -C "$dir" -xf "$tarball"
cp /etc/resolv.conf "$dir/etc/resolv.conf"
chroot "$dir" apt-get update -q > "$dir.apt-update.log" 2>&1 || { tail -20 "$dir.apt-update.log" >&2; exit 1; }

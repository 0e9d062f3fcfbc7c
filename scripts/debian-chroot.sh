#!/usr/bin/env bash
# A clean Debian chroot in DIR for the packaging test: debootstrap --variant=minbase of the host's
# release (no compiler, no Swift), unpacked fresh each time from a tarball of debootstrap's output
# kept in .build/packaging (made on first use, about a minute), with the package lists updated.
# Usage: scripts/debian-chroot.sh DIR   (root; DEBIAN_MIRROR overrides deb.debian.org)
#        scripts/debian-chroot.sh --tarball   makes the tarball if needed and prints its path
#        (scripts/build-image.sh imports it as the container images' Debian base)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?chroot directory or --tarball}
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=$root/.build/packaging
tarball=$cache/$suite-minbase.tar
if [ ! -f "$tarball" ]; then
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/debootstrap.XXXXXX")
  status=0
  debootstrap --variant=minbase "$suite" "$work" "$mirror" > "$cache/debootstrap.log" 2>&1 || status=$?
  # debootstrap can leave /proc or /sys mounted in its target (seen when run from a background
  # job): unmount, innermost first, before the tree is archived or removed.
  awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
  if [ "$status" -ne 0 ]; then
    tail -20 "$cache/debootstrap.log" >&2
    rm -rf "$work"
    exit 1
  fi
  tar -C "$work" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
  rm -rf "$work"
fi
if [ "$dir" = --tarball ]; then echo "$tarball"; exit 0; fi
mkdir -p "$dir"
tar -C "$dir" -xf "$tarball"
cp /etc/resolv.conf "$dir/etc/resolv.conf"
chroot "$dir" apt-get update -q > "$dir.apt-update.log" 2>&1 || { tail -20 "$dir.apt-update.log" >&2; exit 1; }

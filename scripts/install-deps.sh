#!/usr/bin/env bash
# Installs the system packages FSPF needs (Debian/Ubuntu). Quick no-op when all are present.
# --bench adds the peers and tools `make bench` measures against.
set -euo pipefail
packages=(fuse3 libfuse3-dev libssl-dev libsodium-dev pkg-config openssl util-linux time)
if [ "${1:-}" = --bench ]; then packages+=(gocryptfs securefs fio gcc procps); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null

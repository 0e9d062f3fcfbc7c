#!/usr/bin/env bash
# Installs the system packages FSPF needs (Debian/Ubuntu). Quick no-op when all are present.
# --bench adds the peers and tools `make bench` measures against; --tools the third-party programs the
# read-write mount is checked with (fio, dbench, stress-ng, SQLite, git, CPython's test suite; psmisc's fuser names
# what holds a mount busy); --spark adds Java 17 and the
# project-local virtualenv .venv with PySpark (examples/nyc-taxi/requirements.txt), the Python
# package's fsspec, pandas and pytest (python/requirements.txt) and the deployment recipes' linters
# (deploy/requirements.txt, shellcheck). The JDK (not only the JRE): the Hadoop file system's javac and jni.h.
# --packaging: what make deb, make wheel, make image and the packaging tests use (debootstrap, mandoc,
# readelf, venv, podman with runc).
set -euo pipefail
packages=(fuse3 libfuse3-dev libssl-dev libsodium-dev pkg-config openssl util-linux time)
spark=false
for option in "$@"; do
  case $option in
    --bench) packages+=(gocryptfs securefs fio gcc procps) ;;
    --tools) packages+=(fio dbench stress-ng sqlite3 git libpython3.11-testsuite attr psmisc) ;;
    --packaging) packages+=(debootstrap dpkg-dev mandoc bsdextrautils binutils python3-venv systemd podman runc) ;;
    --spark) spark=true; packages+=(openjdk-17-jdk-headless python3-venv procps shellcheck gettext-base) ;;
    *) echo "install-deps.sh: unknown option $option" >&2; exit 64 ;;
  esac
done
venv() {
  $spark || return 0
  local reqs=(examples/nyc-taxi/requirements.txt python/requirements.txt deploy/requirements.txt)
  # Reinstalled only when the requirements changed.
  if [ -x .venv/bin/python ] && cat "${reqs[@]}" | cmp -s - .venv/requirements.txt; then return 0; fi
  echo "setting up .venv (PySpark, pyarrow, numpy, fsspec, pandas, pytest; hadolint, kubernetes-validate, yamllint)"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "${reqs[@]/#/-r}"
  cat "${reqs[@]}" > .venv/requirements.txt
}
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then venv; exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
venv

#!/usr/bin/env bash
# make wheel: the Python package (python/fspf) with libfspf.so inside, as a wheel for this
# platform (py3-none-linux_ARCH: ctypes needs no particular Python ABI, the library needs this
# architecture and glibc, libssl3, libsodium23). Its version is FSPFVersion's (a test checks that
# python/pyproject.toml says the same).
# Usage: scripts/build-wheel.sh LIBFSPF.so OUTDIR
# Builds in a virtualenv of its own (.build/wheel-venv: setuptools, wheel, build from PyPI).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
library=$(realpath "${1:?path to libfspf.so (make release)}")
out=$(mkdir -p "${2:?output directory}" && cd "$2" && pwd)
venv=$root/.build/wheel-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import build, wheel, setuptools' 2> /dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'setuptools>=68' 'wheel>=0.42' 'build>=1.0'
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -r "$root/python/." "$stage/"
rm -rf "$stage/tests" "$stage"/fspf/__pycache__
cp "$library" "$stage/fspf/libfspf.so"
"$venv/bin/python" -m build --wheel --no-isolation --outdir "$stage/dist" "$stage" > "$stage/build.log" 2>&1 \
  || { cat "$stage/build.log" >&2; exit 1; }
built=$(ls "$stage"/dist/*.whl)
"$venv/bin/python" -m wheel tags --remove --python-tag py3 --abi-tag none --platform-tag "linux_$(uname -m)" "$built" > /dev/null
rm -f "$out"/fspf-*.whl
mv "$stage"/dist/fspf-*-py3-none-linux_*.whl "$out/"
ls "$out"/fspf-*.whl

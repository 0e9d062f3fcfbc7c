#!/usr/bin/env bash
# Part of `make bench`: builds fspf, fspf-mount and fspf-bench as they were before format 2
# (the last commit writing format 1) in a git worktree under .build-v1, so that one run
# measures both formats side by side. Prints the directory holding the binaries.
set -euo pipefail
V1_COMMIT=${V1_COMMIT:-776f1a5}
src=.build-v1/src
bin=$src/.build/release
if [ ! -x "$bin/fspf-bench" ] || [ "$(git -C "$src" rev-parse --short=7 HEAD 2>/dev/null)" != "${V1_COMMIT:0:7}" ]; then
  echo "building format-1 fspf ($V1_COMMIT) in $src" >&2
  git worktree remove --force "$src" 2>/dev/null || rm -rf "$src"
  git worktree prune
  git worktree add --force --detach "$src" "$V1_COMMIT" >&2
  for p in fspf fspf-mount fspf-bench; do (cd "$src" && swift build -c release --product "$p" >&2); done
fi
realpath "$bin"

#!/usr/bin/env bash
# make bench: every measurement in one run, written to docs/BENCHMARKS.md.
set -euo pipefail
FSPF=${1:-.build/release/fspf}
OUT=${OUT:-docs/BENCHMARKS.md}
swift build -c release --product fspf-bench >/dev/null
swift build -c release --product fspf-mount >/dev/null
encrypt=$(scripts/bench-encrypt.sh "$FSPF")
mount=$(scripts/bench-mount.sh "$FSPF")
cpu=$(awk -F: '/model name/ {sub(/^ /,"",$2); print $2; exit}' /proc/cpuinfo)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
cat > "$OUT" <<MD
# Benchmarks

Produced by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d). Every figure in a table
comes from the same run; ratios, not absolute times, are what carries over between machines.

Machine: $cpu, $(nproc) cores, $mem, $(uname -sr), $(openssl version | cut -d' ' -f1-2), libfuse $(pkg-config --modversion fuse3).

$encrypt

$mount
MD
echo "wrote $OUT" >&2
cat "$OUT"

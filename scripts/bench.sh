#!/usr/bin/env bash
# make bench: every measurement in one run, written to docs/BENCHMARKS.md above its
# hand-written part (what each optimisation bought), which is kept as it is.
set -euo pipefail
FSPF=${1:-.build/release/fspf}
OUT=${OUT:-docs/BENCHMARKS.md}
MARK='<!-- Everything above is written by make bench; everything below is kept. -->'
[ "$(id -u)" = 0 ] || { echo "make bench: needs root (drops the page cache, mounts)" >&2; exit 77; }
for tool in gocryptfs securefs fio java; do
  command -v "$tool" > /dev/null || { echo "make bench: $tool missing (scripts/install-deps.sh --bench --spark)" >&2; exit 69; }
done
start=$(date +%s)
swift build ${RELEASE_FLAGS:--c release} --product fspf-bench > /dev/null
FSPF_V1=$(scripts/bench-v1.sh)
export FSPF_V1
encrypt=$(scripts/bench-encrypt.sh "$FSPF")
read=$(scripts/bench-read.sh "$FSPF")
scale=$(scripts/bench-scale.sh "$FSPF")
write=$(scripts/bench-write.sh "$FSPF")
spark=$(scripts/bench-spark.sh "$FSPF")
cpu=$(awk -F: '/model name/ {sub(/^ /,"",$2); print $2; exit}' /proc/cpuinfo)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
kept=""
[ -f "$OUT" ] && kept=$(awk -v m="$MARK" 'found {print} $0 == m {found = 1}' "$OUT")
cat > "$OUT" <<MD
# Benchmarks

Produced by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d) in $(( ($(date +%s) - start) / 60 )) minutes. Every figure
comes from that one run; ratios between systems measured side by side, not absolute times, are
what carries over between machines.

Machine: $cpu, $(nproc) cores, $mem, $(uname -sr), $(openssl version | cut -d' ' -f1-2), libfuse $(pkg-config --modversion fuse3),
gocryptfs $(gocryptfs -version | cut -d';' -f1 | cut -d' ' -f2), securefs $(dpkg-query -W -f '${Version}' securefs 2>/dev/null), fio $(fio --version | sed 's/fio-//').

$read

$scale

$write

$spark

$encrypt

$MARK
$kept
MD
echo "wrote $OUT" >&2
cat "$OUT"

#!/usr/bin/env bash
# Part of `make bench`: `fspf encrypt` throughput on a 1 GiB tree next to
# `openssl speed -evp aes-256-gcm` x cores and `cp -r`, measured in one run, plus the
# per-chunk-size library measurements behind the default chunk size. Prints markdown.
set -euo pipefail
FSPF=$(realpath "${1:-.build/release/fspf}")
BENCH=$(dirname "$FSPF")/fspf-bench
RUNS=${RUNS:-5}
work=$(mktemp -d /dev/shm/fspf-bench-XXXXXX)   # tmpfs: measure crypto and the tool, not the disk
trap 'rm -rf "$work"' EXIT
cores=$(nproc)

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "preparing a 1 GiB tree (16 x 64 MiB random files) in $work" >&2
mkdir -p "$work/tree"
for i in $(seq -w 1 16); do head -c 64M /dev/urandom > "$work/tree/part-$i.bin"; done

echo "openssl speed (one core, then $cores processes)" >&2
single=$(openssl speed -evp aes-256-gcm -seconds 3 -bytes 65536 2>/dev/null | awk '/^AES-256-GCM|^aes-256-gcm/ {v=$NF} END {sub(/k$/,"",v); print v*1000/1e6}')
multi=$(openssl speed -evp aes-256-gcm -seconds 3 -bytes 65536 -multi "$cores" 2>/dev/null | awk '/^evp|^aes-256-gcm|^AES-256-GCM/ {v=$NF} END {sub(/k$/,"",v); print v*1000/1e6}')

# Interleaved with fspf: copying the same tree (cp -r), the cost of moving the bytes alone.
rate() { awk -v s="$1" -v e="$2" 'BEGIN {print 1073741824 / (e - s) / 1e6}'; }
echo "fspf encrypt and cp -r, $RUNS runs each after one warm-up" >&2
"$FSPF" encrypt "$work/tree" --out "$work/vol" --quiet > /dev/null   # warm-up: first use of fresh tmpfs pages
rates=()
copies=()
for r in $(seq 1 "$RUNS"); do
  rm -rf "$work/copy"
  s=$(date +%s.%N); cp -r "$work/tree" "$work/copy"; e=$(date +%s.%N)
  copies+=("$(rate "$s" "$e")")
  rm -rf "$work/copy"
  rm -rf "$work/vol"
  s=$(date +%s.%N)
  "$FSPF" encrypt "$work/tree" --out "$work/vol" --quiet > /dev/null
  e=$(date +%s.%N)
  rates+=("$(rate "$s" "$e")")
done
fspf_median=$(printf '%s\n' "${rates[@]}" | median)
copy_median=$(printf '%s\n' "${copies[@]}" | median)
list() { printf '%s ' "$@" | awk '{for(i=1;i<=NF;i++) printf "%d%s", $i, (i<NF?", ":"")}'; }
ideal=$(awk -v a="$single" -v c="$cores" 'BEGIN {print a * c}')
ratio=$(awk -v f="$fspf_median" -v i="$ideal" 'BEGIN {printf "%.0f", 100 * f / i}')
rm -rf "$work/vol" "$work/tree"

echo "chunk-size sweep (library level)" >&2
sweep=$("$BENCH" "$work" 256)

cat <<MD
## \`fspf encrypt\` next to \`openssl speed -evp aes-256-gcm\`

Data on tmpfs (/dev/shm) so that the disk does not hide the cost of the tool.

A 1 GiB tree of 16 random 64 MiB files, default options (64 KiB chunks, all cores), median of $RUNS runs.
\`openssl speed\` runs with 64 KiB blocks for 3 s.

| measurement | MB/s |
|---|---:|
| openssl speed -evp aes-256-gcm, one core | $single |
| openssl speed -evp aes-256-gcm -multi $cores | $multi |
| openssl one core x $cores cores | $ideal |
| cp -r of the same tree (median of: $(list "${copies[@]}")) | $(printf '%.0f' "$copy_median") |
| **fspf encrypt** (median of: $(list "${rates[@]}")) | **$(printf '%.0f' "$fspf_median")** |
| fspf encrypt / (openssl x cores) | **$ratio %** |
| fspf encrypt / cp -r | $(awk -v f="$fspf_median" -v c="$copy_median" 'BEGIN {printf "%.2f", f / c}') |

The writer reads, encrypts and writes each byte once (plus 16 bytes of tag per chunk and the
tag tree). On this machine moving a byte through the page cache costs more than encrypting it:
\`cp -r\` of the same tree, which does no crypto at all, is itself far below \`openssl speed\`,
and \`/usr/bin/time\` shows fspf spending most of its time in the kernel (system time), not
in AES-GCM. The >= 60 % target belongs to the performance issue; this records where the first
version stands and what bounds it.

## Chunk size

\`fspf-bench\` (Sources/fspf-bench) writes a 256 MiB random file into a volume per chunk size,
then reads it back through \`VolumeReader\` with a warm page cache: sequentially in 1 MiB reads,
and at random 4 KiB- and 128 KiB-aligned offsets. Each read decrypts and authenticates whole
chunks, so small reads from large chunks pay for the whole chunk.

$sweep

Default: **64 KiB**. Sequential reads (Spark and Parquet scans, the main workload) reach their
plateau from 64 KiB on; random 128 KiB reads (the size FUSE hands over) are within a few percent
of the best; the tag tree costs 16 bytes per 64 KiB (0.025 %). Smaller chunks win only for
random 4 KiB reads, where a 4 KiB chunk avoids decrypting 60 KiB that are not wanted; volumes
read that way can be built with \`--chunk-size 4K\`. Sizes above 64 KiB buy no sequential speed
and cost random reads dearly.
MD

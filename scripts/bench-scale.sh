#!/usr/bin/env bash
# Part of `make bench`: what fspf-mount costs as volumes grow. Mount time (from start until
# the mount answers) and the daemon's peak resident memory for a volume of 100,000 files and
# for a volume holding one 10 GiB file, read whole. Prints markdown.
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh" "$@"
work=$(mktemp -d /var/tmp/fspf-bench-scale-XXXXXX)
cleanup() { unmount "$work/mnt"; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/mnt"

mount_volume() {  # volume; leaves the daemon's pid in $pid
  "$MOUNT" "$work/$1" "$work/mnt" --key-file "$work/$1.key" --tag "$(awk '{print $9}' "$work/$1.line")"
  pid=$(pgrep -n -f "fspf-mount $work/$1 ")
}

echo "preparing a volume of 100,000 files (1000 directories x 100, 1 B-4 KiB)" >&2
make_tree "$work/many" 1000 4096 2
"$FSPF" encrypt "$work/many" --out "$work/many.vol" --key-out "$work/many.vol.key" --quiet > "$work/many.vol.line"
rm -rf "$work/many"
metadata_size=$(stat -c %s "$work/many.vol/volume.fspf")

times=()
for r in $(seq 1 "$RUNS"); do
  drop
  s=$(now); mount_volume many.vol; times+=("$(elapsed "$s")")
  [ "$r" -lt "$RUNS" ] && unmount "$work/mnt"
done
mount_many=$(printf '%s\n' "${times[@]}" | median)
rss_many_mounted=$(peak_rss "$pid")
ls -lR "$work/mnt" > /dev/null
rss_many_listed=$(peak_rss "$pid")
find "$work/mnt" -type f -print0 | xargs -0 cat > /dev/null
rss_many=$(peak_rss "$pid")
unmount "$work/mnt"
rm -rf "$work/many.vol"

echo "preparing a volume holding one 10 GiB file" >&2
mkdir -p "$work/big"
# Sparse input: the volume itself is written in full (10 GiB of ciphertext), the input costs no disk.
truncate -s 10G "$work/big/data.bin"
"$FSPF" encrypt "$work/big" --out "$work/big.vol" --key-out "$work/big.vol.key" --quiet > "$work/big.vol.line"
drop
s=$(now); mount_volume big.vol; mount_big=$(elapsed "$s")
rss_big_mounted=$(peak_rss "$pid")
s=$(now); cmp "$work/mnt/data.bin" "$work/big/data.bin"; read_big=$(awk -v t="$(elapsed "$s")" 'BEGIN {printf "%.0f", 10737418240 / t / 1e6}')
rss_big=$(peak_rss "$pid")
unmount "$work/mnt"

ms() { awk -v t="$1" 'BEGIN {printf "%.0f", t * 1000}'; }
cat <<MD
## Scale: mount time and memory

\`fspf-mount\` is timed from start until it returns, which it does once the mount answers
(page cache dropped before each mount; median of $RUNS). Peak resident memory is the daemon's
VmHWM, which includes its locked (mlockall) pages.

| volume | mount time | peak RSS after mount | peak RSS after reading everything |
|---|---:|---:|---:|
| 100,000 files in 1,000 directories (metadata $((metadata_size / 1024)) KiB) | $(ms "$mount_many") ms (runs: $(for t in "${times[@]}"; do printf '%s ' "$(ms "$t")"; done)) | $rss_many_mounted MiB | $rss_many_listed MiB after \`ls -lR\`, $rss_many MiB after reading every file |
| one 10 GiB file | $(ms "$mount_big") ms | $rss_big_mounted MiB | $rss_big MiB after reading it whole ($read_big MB/s, compared with the input) |

| target | measured | |
|---|---:|---|
| mounting a 100,000-file volume < 1 s | $(ms "$mount_many") ms | $(below "$mount_many" 1) |
| daemon RSS < 64 MiB for the 10 GiB file | $rss_big MiB | $(below "$rss_big" 64) |
MD

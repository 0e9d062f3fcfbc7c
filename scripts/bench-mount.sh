#!/usr/bin/env bash
# Part of `make bench`: sequential read of a 1 GiB file through fspf-mount next to the plain
# directory on the same disk, interleaved in one run, page cache dropped before each read.
# Prints markdown.
set -euo pipefail
FSPF=$(realpath "${1:-.build/release/fspf}")
MOUNT=$(dirname "$FSPF")/fspf-mount
RUNS=${RUNS:-5}
work=$(mktemp -d /var/tmp/fspf-bench-mount-XXXXXX)   # a real disk: dropping the page cache means something
cleanup() { umount "$work/mnt" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
list() { printf '%s ' "$@" | awk '{for(i=1;i<=NF;i++) printf "%d%s", $i, (i<NF?", ":"")}'; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# dd's own figure, in MB/s.
readrate() { dd if="$1" of=/dev/null bs=1M 2>&1 | awk '/copied/ {for(i=1;i<=NF;i++) if ($i ~ /^s,?$/) s=$(i-1); print 1073741824 / s / 1e6}'; }

echo "preparing a 1 GiB file and its volume in $work" >&2
mkdir -p "$work/plain" "$work/mnt"
head -c 1G /dev/urandom > "$work/plain/data.bin"
"$FSPF" encrypt "$work/plain" --out "$work/vol" --key-out "$work/key" --quiet > "$work/line"
"$MOUNT" "$work/vol" "$work/mnt" --key-file "$work/key" --tag "$(awk '{print $9}' "$work/line")" 2>/dev/null

plain=(); mounted=(); warm=()
for r in $(seq 1 "$RUNS"); do
  echo "run $r/$RUNS" >&2
  drop; plain+=("$(readrate "$work/plain/data.bin")")
  drop; mounted+=("$(readrate "$work/mnt/data.bin")")
  warm+=("$(readrate "$work/mnt/data.bin")")   # again, page cache kept across opens
done
p=$(printf '%s\n' "${plain[@]}" | median)
m=$(printf '%s\n' "${mounted[@]}" | median)
w=$(printf '%s\n' "${warm[@]}" | median)

cat <<MD
## Sequential read through \`fspf-mount\`

A 1 GiB random file, \`dd bs=1M\`, page cache dropped before each cold read; plain and mounted
reads interleaved, median of $RUNS. The volume (64 KiB chunks) and the plain file lie on the same
disk ($(df --output=source "$work" | tail -1)).

| read | MB/s (runs) | median |
|---|---|---:|
| plain directory, cold | $(list "${plain[@]}") | $(printf '%.0f' "$p") |
| **fspf-mount, cold** | $(list "${mounted[@]}") | **$(printf '%.0f' "$m")** |
| fspf-mount, warm (second read, page cache kept) | $(list "${warm[@]}") | $(printf '%.0f' "$w") |
| fspf-mount cold / plain cold | | **$(awk -v m="$m" -v p="$p" 'BEGIN {printf "%.2f", m / p}')** |

A cold read through the mount pays, on top of reading the same bytes from disk, for decrypting
and verifying them and for FUSE's extra copy and round trip per request (1 MiB requests,
readahead raised to 4 MiB). A warm read is served from the page cache, which the mount keeps
across opens because the volume cannot change while mounted. The side-by-side comparison with
gocryptfs and libfuse's passthrough_ll, and the targets, belong to the performance issue.
MD

#!/usr/bin/env bash
# Part of `make bench`: writing through a mount. A plain directory, gocryptfs and fspf-mount
# --create (16 KiB chunks, the default, and 4 KiB) side by side, interleaved round by round
# (RUNS rounds, medians): sequential write of 1 GiB (dd, fsync), random 4 KiB and 128 KiB writes
# (fio, psync, a 256 MiB file, WRITE_SECONDS each, fsync at the end), untar of a 10,000-file tree
# (then sync); then fspf only: the seal of 10,000 and 100,000 files and the daemon's peak
# resident memory while 10 GiB are written; and reading back a written volume next to one made
# by fspf encrypt. Targets (issue 21): every write figure >= 1.5 x gocryptfs, the seal of 100,000
# files < 1 s, < 128 MiB resident, a written volume read as fast as an encrypted one. Prints markdown.
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh" "$@"
WRITE_SECONDS=${WRITE_SECONDS:-15}
SEQ_MIB=${SEQ_MIB:-1024}
BIG_GIB=${BIG_GIB:-10}
SEAL_COPIES=${SEAL_COPIES:-10}
work=$(mktemp -d /var/tmp/fspf-bench-write-XXXXXX)
systems=(plain gocryptfs fspf fspf-4k)
cleanup() { for s in "${systems[@]}"; do unmount "$work/mnt/$s"; done; rm -rf "$work"; }
trap cleanup EXIT
"$FSPF" keygen > "$work/key"

echo "preparing a tree of 10,000 files (100 directories x 100, 1 B-32 KiB) as a tar" >&2
make_tree "$work/tree" 100 32768 3
tar -C "$work/tree" -cf "$work/tree.tar" .
rm -rf "$work/tree"

fresh() {  # system: an empty file system of that kind at $work/mnt/SYSTEM, its pid in $pid
  local s=$1 m=$work/mnt/$1
  unmount "$m"; rm -rf "$work/store-$s" "$m"; mkdir -p "$m"
  pid=""
  case $s in
    plain) mkdir -p "$work/store-$s"; mount --bind "$work/store-$s" "$m" ;;
    gocryptfs) mkdir -p "$work/store-$s"; printf '%s\n' "$PASSWORD" > "$work/store-$s.pass"
               gocryptfs -q -init -passfile "$work/store-$s.pass" "$work/store-$s" > /dev/null
               gocryptfs -q -passfile "$work/store-$s.pass" "$work/store-$s" "$m" ;;
    fspf) "$MOUNT" "$work/store-$s" "$m" --create --key-file "$work/key" --log-file none ;;
    fspf-4k) "$MOUNT" "$work/store-$s" "$m" --create --chunk-size 4K --key-file "$work/key" --log-file none ;;
  esac
  wait_mounted "$m"
  case $s in fspf*) pid=$(pgrep -n -f "fspf-mount $work/store-$s ") ;; esac
}
done_with() { if [ "$1" = plain ]; then umount "$work/mnt/$1"; else unmount "$work/mnt/$1"; fi; }

declare -A seq rand4 rand128 untar
fio_rate() {  # dir bs: MB/s of random writes
  fio --name=w --directory="$1" --size=256m --bs="$2" --rw=randwrite --ioengine=psync --runtime="$WRITE_SECONDS" --time_based \
    --end_fsync=1 --output-format=terse 2>/dev/null | awk -F';' '{printf "%.1f", $48 / 1024}'
}
for r in $(seq 1 "$RUNS"); do
  for s in "${systems[@]}"; do
    echo "write round $r: $s" >&2
    m=$work/mnt/$s
    fresh "$s"; drop
    t=$(now); dd if=/dev/zero of="$m/seq" bs=1M count="$SEQ_MIB" conv=fsync status=none
    seq[$s]+="$(awk -v e="$(elapsed "$t")" -v n="$SEQ_MIB" 'BEGIN {printf "%.1f", n * 1.048576 / e}') "
    rm -f "$m/seq"
    rand4[$s]+="$(fio_rate "$m" 4k) "; rm -f "$m"/w.*
    rand128[$s]+="$(fio_rate "$m" 128k) "; rm -f "$m"/w.*
    drop
    t=$(now); tar -C "$m" -xf "$work/tree.tar"; sync; untar[$s]+="$(elapsed "$t") "
    done_with "$s"
  done
done
med() { printf "%s\n" $1 | median; }  # word splitting intended: the figures

# The seal: 10,000 files (the untarred tree) and 100,000 (ten copies of it), each timed by
# `fspf seal` once everything is written; the daemon holds every file's final form already
# (brought there at each file's last close), so the seal is the metadata.
seal_time() {  # copies
  fresh fspf
  for i in $(seq 1 "$1"); do mkdir "$work/mnt/fspf/c$i"; tar -C "$work/mnt/fspf/c$i" -xf "$work/tree.tar"; done
  sync
  t=$(now); "$FSPF" seal "$work/mnt/fspf" > /dev/null; e=$(elapsed "$t")
  files=$(find "$work/mnt/fspf" -type f | wc -l)
  done_with fspf
  echo "$e $files"
}
echo "seal of 10,000 and $((SEAL_COPIES * 10)),000 files" >&2
read -r seal10 files10 < <(seal_time 1)
read -r seal100 files100 < <(seal_time "$SEAL_COPIES")

echo "daemon memory while $BIG_GIB GiB are written" >&2
fresh fspf
t=$(now); dd if=/dev/zero of="$work/mnt/fspf/big" bs=1M count=$((BIG_GIB * 1024)) conv=fsync status=none; big_rate=$(awk -v e="$(elapsed "$t")" -v n=$((BIG_GIB * 1024)) 'BEGIN {printf "%.1f", n * 1.048576 / e}')
rss_big=$(peak_rss "$pid")
t=$(now); "$FSPF" seal "$work/mnt/fspf" > /dev/null; seal_big=$(elapsed "$t")
done_with fspf

# A written volume reads like one from fspf encrypt (issue 21, item 3): the same SEQ_MIB of
# random data, once copied into a read-write mount and then rewritten at 2,000 random 4 KiB
# places (so the reader looks up chunk generations), once encrypted by fspf encrypt; each
# mounted read-only under its tag and read twice, RUNS rounds interleaved, which volume goes
# first alternating: cold (page cache dropped: the disk is in it, and the one written last may
# still sit in the host's cache) and warm (ciphertext cached, a fresh mount: only fspf's reading
# and decrypting). The target is on the warm read.
echo "reading a written volume and an encrypted one" >&2
mkdir -p "$work/src" "$work/mnt/read"
head -c $((SEQ_MIB << 20)) /dev/urandom > "$work/src/data"
fresh fspf
cp "$work/src/data" "$work/mnt/fspf/data"
python3 - "$work/mnt/fspf/data" <<'PY'
import os, random, sys
random.seed(7)
with open(sys.argv[1], "r+b") as f:
    size = os.fstat(f.fileno()).st_size
    for _ in range(2000):
        f.seek(random.randrange(0, size - 4096) & ~4095)
        f.write(os.urandom(4096))
PY
written_tag=$("$FSPF" seal "$work/mnt/fspf" --unmount)
"$FSPF" encrypt "$work/src" --out "$work/encrypted" --key-file "$work/key" > /dev/null
encrypted_tag=$("$FSPF" info "$work/encrypted" | awk '/^tag:/ {print $2}')
declare -A cold=([written]="" [encrypted]="") warm=([written]="" [encrypted]="")
read_once() {  # kind: prints MB/s of one cat through a fresh read-only mount
  local vol tag e
  if [ "$1" = written ]; then vol=$work/store-fspf tag=$written_tag; else vol=$work/encrypted tag=$encrypted_tag; fi
  "$MOUNT" "$vol" "$work/mnt/read" --key-file "$work/key" --tag "$tag" --log-file none
  wait_mounted "$work/mnt/read"
  [ "$2" = cold ] && drop
  t=$(now); cat "$work/mnt/read/data" > /dev/null; e=$(elapsed "$t")
  unmount "$work/mnt/read"
  awk -v e="$e" -v n="$SEQ_MIB" 'BEGIN {printf "%.1f", n * 1.048576 / e}'
}
for round in $(seq 1 "$RUNS"); do
  order="written encrypted"; [ $((round % 2)) = 0 ] && order="encrypted written"
  for kind in $order; do
    cold[$kind]+="$(read_once "$kind" cold) "
    warm[$kind]+="$(read_once "$kind" warm) "
  done
done
cold_written=$(med "${cold[written]}"); cold_encrypted=$(med "${cold[encrypted]}")
warm_written=$(med "${warm[written]}"); warm_encrypted=$(med "${warm[encrypted]}")
cold_ratio=$(ratio "$cold_written" "$cold_encrypted"); warm_ratio=$(ratio "$warm_written" "$warm_encrypted")

row() {  # label array unit higher-is-better(1|0)
  local -n a=$2
  local p g f f4
  p=$(med "${a[plain]}"); g=$(med "${a[gocryptfs]}"); f=$(med "${a[fspf]}"); f4=$(med "${a[fspf-4k]}")
  local vs vs4
  if [ "$4" = 1 ]; then vs=$(ratio "$f" "$g"); vs4=$(ratio "$f4" "$g"); else vs=$(ratio "$g" "$f"); vs4=$(ratio "$g" "$f4"); fi
  echo "| $1 ($3) | $(printf '%.1f' "$p") | $(printf '%.1f' "$g") | $(printf '%.1f' "$f") ($(list ${a[fspf]})) | $(printf '%.1f' "$f4") | $vs × $(at_least "$vs" 1.5) | $vs4 × |"
}
cat <<MD
## Writing through a mount

\`scripts/bench-write.sh\`, $RUNS rounds interleaved (medians; fspf's single runs in brackets): a
plain directory (bind mount), gocryptfs $(gocryptfs -version | cut -d';' -f1 | cut -d' ' -f2) (defaults) and
\`fspf-mount --create\` with 16 KiB chunks (the default) and with \`--chunk-size 4K\`, each on a fresh empty
file system per round. Sequential: \`dd bs=1M count=$SEQ_MIB conv=fsync\`; random: fio psync, a 256 MiB
file, ${WRITE_SECONDS} s, fsync at the end; untar: 10,000 files (1 B-32 KiB, 100 directories), then \`sync\`.
"vs gocryptfs" is fspf (16 KiB) ÷ gocryptfs, higher is better (for untar: gocryptfs's time ÷ fspf's);
the target is 1.5 ×.

| workload | plain | gocryptfs | fspf | fspf, 4 KiB chunks | fspf vs gocryptfs | 4 KiB chunks vs gocryptfs |
|---|---|---|---|---|---|---|
$(row "sequential write" seq "MB/s" 1)
$(row "random 4 KiB writes" rand4 "MB/s" 1)
$(row "random 128 KiB writes" rand128 "MB/s" 1)
$(row "untar 10,000 files" untar "s" 0)

| fspf-mount, read-write | measured | target |
|---|---|---|
| \`fspf seal\` of $files10 files | $(printf '%.2f' "$seal10") s | |
| \`fspf seal\` of $files100 files | $(printf '%.2f' "$seal100") s | < 1 s: $(below "$seal100" 1) |
| daemon peak resident memory writing $BIG_GIB GiB (dd, $big_rate MB/s) | $rss_big MiB | < 128 MiB: $(below "$rss_big" 128) |
| \`fspf seal\` after it (one $BIG_GIB GiB file) | $(printf '%.2f' "$seal_big") s | |
| sequential read of $SEQ_MIB MiB through a fresh mount, ciphertext cached: written volume (2,000 chunks rewritten), MB/s | $(printf '%.1f' "$warm_written") ($(list ${warm[written]})) | |
| the same from a volume made by \`fspf encrypt\`, MB/s | $(printf '%.1f' "$warm_encrypted") ($(list ${warm[encrypted]})) | |
| written ÷ encrypted, ciphertext cached | $warm_ratio | ≥ 0.95: $(at_least "$warm_ratio" 0.95) |
| the same reads cold (page cache dropped), written ÷ encrypted | $cold_ratio ($(printf '%.1f' "$cold_written") ÷ $(printf '%.1f' "$cold_encrypted") MB/s) | |
MD

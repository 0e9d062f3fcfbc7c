#!/usr/bin/env bash
# Part of `make bench`: reading the same data through the plain directory, libfuse's
# passthrough_ll, gocryptfs -ro, securefs (read-only) and fspf-mount, interleaved round by
# round in one run, page cache dropped before every measurement; fspf-mount as built (format 2,
# default chunk size), with 64 KiB chunks, and format 1 as shipped before (scripts/bench-v1.sh),
# also warm (objects in the page cache, so the disk is out); then libfspf in-process against the
# mount with the same requests from one process (scripts/read-bench.c). Prints markdown.
set -euo pipefail
FIO_SECONDS=${FIO_SECONDS:-5}
. "$(dirname "$0")/bench-lib.sh" "$@"
work=$(mktemp -d /var/tmp/fspf-bench-read-XXXXXX)   # a real disk: dropping the page cache means something
systems=(plain passthrough_ll gocryptfs securefs fspf fspf-64k fspf-v1)
formats=(fspf-v1 fspf-64k fspf)
cleanup() { for s in "${systems[@]}"; do unmount "$work/mnt/$s" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

echo "preparing a 1 GiB file and 10,000 small files in $work" >&2
mkdir -p "$work/plain"
head -c 1G /dev/urandom > "$work/plain/big.bin"
make_tree "$work/plain/small" 100 16384 1
echo "preparing the volumes" >&2
for s in "${systems[@]}"; do mkdir -p "$work/mnt/$s"; done
"$FSPF" encrypt "$work/plain" --out "$work/fspf" --key-out "$work/fspf.key" --quiet > "$work/fspf.line"
"$FSPF" encrypt "$work/plain" --out "$work/fspf-64k" --chunk-size 64K --key-out "$work/fspf-64k.key" --quiet > "$work/fspf-64k.line"
"$V1/fspf" encrypt "$work/plain" --out "$work/fspf-v1" --key-out "$work/fspf-v1.key" --quiet > "$work/fspf-v1.line"
chunk=$("$FSPF" info "$work/fspf" --key-file "$work/fspf.key" | awk '/^region/ {print $NF / 1024 " KiB"; exit}')
prepare_gocryptfs "$work/plain" "$work/gocryptfs" "$work/mnt/gocryptfs"
prepare_securefs "$work/plain" "$work/securefs" "$work/mnt/securefs"
build_passthrough "$work/passthrough_ll"

echo "mounting" >&2
rmdir "$work/mnt/plain"; ln -s "$work/plain" "$work/mnt/plain"
"$work/passthrough_ll" -o source="$work/plain",ro "$work/mnt/passthrough_ll"; wait_mounted "$work/mnt/passthrough_ll"
mount_gocryptfs "$work/plain" "$work/gocryptfs" "$work/mnt/gocryptfs"
mount_securefs "$work/plain" "$work/securefs" "$work/mnt/securefs"
for f in fspf fspf-64k; do
  "$MOUNT" "$work/$f" "$work/mnt/$f" --key-file "$work/$f.key" --tag "$(awk '{print $9}' "$work/$f.line")"
done
"$V1/fspf-mount" "$work/fspf-v1" "$work/mnt/fspf-v1" --key-file "$work/fspf-v1.key" --tag "$(awk '{print $9}' "$work/fspf-v1.line")"
for s in "${systems[@]}"; do
  cmp -s "$work/plain/small/d0042/f042.dat" "$work/mnt/$s/small/d0042/f042.dat" || { echo "bench: $s serves wrong data" >&2; exit 1; }
done

# One measurement of one kind on one system, cold; prints a number.
seq_read() {  # MB/s, dd's own timing
  dd if="$1/big.bin" of=/dev/null bs=1M 2>&1 | awk '/copied/ {for(i=1;i<=NF;i++) if ($i ~ /^s,?$/) s=$(i-1); print 1073741824 / s / 1e6}'
}
fio_iops() {  # dir block-size
  fio --name=bench --filename="$1/big.bin" --readonly --rw=randread --bs="$2" --ioengine=psync \
      --numjobs=2 --group_reporting --time_based --runtime="$FIO_SECONDS" --output-format=json 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["read"]["iops"])'
}
timed() { local s; s=$(now); "$@" > /dev/null; awk -v t="$(elapsed "$s")" 'BEGIN {print t * 1000}'; }  # ms
ls_tree() { ls -lR "$1/small"; }
stat_tree() { find "$1/small" -type f -print0 | xargs -0 stat; }
md5_tree() { find "$1/small" -type f -print0 | xargs -0 md5sum; }

# Warm: every cache dropped, then the big file's object read into the page cache again, so
# that every byte is verified and decrypted again but none waits for the disk. (Dropping only
# the mount's pages of the file with fadvise DONTNEED leaves it reading in small pieces.)
warm() {  # volume
  drop
  find "$work/$1/.fspf-objects" -type f -size +100M -exec cat {} + > /dev/null
}

tests=(seq rand4k rand128k ls stat md5 seqwarm rand4kwarm rand128kwarm)
declare -A results
for r in $(seq 1 "$RUNS"); do
  for t in "${tests[@]}"; do
    echo "run $r/$RUNS: $t" >&2
    for s in "${systems[@]}"; do
      d="$work/mnt/$s"
      case $t in
        *warm) [[ $s == fspf* ]] || continue; warm "$s" ;;
        *) drop ;;
      esac
      case $t in
        seq|seqwarm) v=$(seq_read "$d") ;;
        rand4k|rand4kwarm) v=$(fio_iops "$d" 4k) ;;
        rand128k|rand128kwarm) v=$(fio_iops "$d" 128k) ;;
        ls) v=$(timed ls_tree "$d") ;;
        stat) v=$(timed stat_tree "$d") ;;
        md5) v=$(timed md5_tree "$d") ;;
      esac
      results[$t.$s]="${results[$t.$s]:-} $v"
    done
  done
done

# In-process: one process, 2 threads per core, 128 KiB requests, the objects warm; the same
# program reads the file on the mount with pread(2) and the volume through libfspf.
scripts/build-lib.sh "$(dirname "$FSPF")/libfspf.so" "$work/lib" > /dev/null
clang -O2 -std=c11 -D_GNU_SOURCE -Wall -Werror -I include scripts/read-bench.c -o "$work/read-bench" \
  -L "$work/lib" -lfspf -Wl,-rpath,"$work/lib" -lpthread
bench_threads=$(( $(nproc) * 2 ))
fspf_tag=$(awk '{print $9}' "$work/fspf.line")
for r in $(seq 1 "$RUNS"); do
  for t in libseq librand; do
    echo "run $r/$RUNS: $t" >&2
    mode=${t#lib}
    warm fspf
    v=$("$work/read-bench" posix "$work/mnt/fspf/big.bin" "$mode" 131072 "$bench_threads" 0 | cut -d' ' -f1)
    results[$t.fspf]="${results[$t.fspf]:-} $v"
    warm fspf
    v=$("$work/read-bench" lib "$work/fspf" "$work/fspf.key" "$fspf_tag" big.bin "$mode" 131072 "$bench_threads" 0 | cut -d' ' -f1)
    results[$t.libfspf]="${results[$t.libfspf]:-} $v"
  done
done
fspf_pid=$(pgrep -n -f "fspf-mount $work/fspf ") && fspf_rss=$(peak_rss "$fspf_pid")

med() { printf '%s\n' ${results[$1.$2]} | median; }
# Ratios read "how much better fspf is": throughput fspf/peer, times peer/fspf.
better() { local f p; f=$(med "$1" "${3:-fspf}"); p=$(med "$1" "$2"); case $1 in seq*|rand*) ratio "$f" "$p" ;; *) ratio "$p" "$f" ;; esac; }
peers=(plain passthrough_ll gocryptfs securefs fspf)
row() {  # test label format
  local line="| $2 |" s
  for s in "${peers[@]}"; do line+=" $(printf "$3" "$(med "$1" "$s")") |"; done
  echo "$line $(better "$1" gocryptfs) | $(better "$1" passthrough_ll) | $(better "$1" plain) |"
}
format_row() {  # test label
  local line="| $2 |" s
  for s in "${formats[@]}"; do line+=" $(printf %.0f "$(med "$1" "$s")") |"; done
  echo "$line $(better "$1" fspf-v1) | $(better "$1" fspf-v1 fspf-64k) | $(better "$1" gocryptfs fspf-64k) |"
}
runs_row() { local s line="| $2 |"; for s in "${systems[@]}"; do line+=" $(list ${results[$1.$s]:-}) |"; done; echo "$line"; }

cat <<MD
## Reading: fspf-mount next to the plain directory and the peers

Same data for all: a 1 GiB random file and 10,000 files of 1 B–16 KiB in 100 directories, on
the same disk ($(df --output=source "$work" | tail -1)). Each system is mounted once, with its defaults:
libfuse's \`passthrough_ll\` (FUSE without crypto, $(pkg-config --modversion fuse3)), \`gocryptfs -ro\`
($(gocryptfs -version | cut -d';' -f1 | cut -d' ' -f2)), \`securefs\` with \`-o ro\`, and \`fspf-mount\` on a volume made by
\`fspf encrypt\` with default options (format 2, $chunk chunks). Measurements are interleaved (each round runs every test on
every system in turn) and the page cache is dropped before each one. Medians of $RUNS rounds.
Sequential: \`dd bs=1M\` of the 1 GiB file. Random: \`fio --rw=randread --ioengine=psync --numjobs=2\`,
${FIO_SECONDS} s. Tree: \`ls -lR\`, \`stat\` of every file, \`md5sum\` of every file (find | xargs).

Ratios say how much better fspf is: throughput fspf ÷ peer, times peer ÷ fspf (above 1: fspf wins).

| test | plain | passthrough_ll | gocryptfs | securefs | **fspf-mount** | fspf vs gocryptfs | vs passthrough_ll | vs plain |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
$(row seq "sequential read, MB/s" %.0f)
$(row rand4k "random 4 KiB reads, IOPS" %.0f)
$(row rand128k "random 128 KiB reads, IOPS" %.0f)
$(row ls "ls -lR, ms" %.0f)
$(row stat "stat every file, ms" %.0f)
$(row md5 "md5sum every file, ms" %.0f)

fspf-mount's peak resident memory over the whole run: ${fspf_rss:-?} MiB.

### Targets

| target | measured | |
|---|---:|---|
| sequential read ≥ 1.5 × gocryptfs | $(better seq gocryptfs) × | $(at_least "$(better seq gocryptfs)" 1.5) |
| sequential read ≥ 1.0 × passthrough_ll | $(better seq passthrough_ll) × | $(at_least "$(better seq passthrough_ll)" 1.0) |
| random 4 KiB ≥ 1.2 × gocryptfs IOPS | $(better rand4k gocryptfs) × | $(at_least "$(better rand4k gocryptfs)" 1.2) |
| random 128 KiB ≥ 1.5 × gocryptfs IOPS | $(better rand128k gocryptfs) × | $(at_least "$(better rand128k gocryptfs)" 1.5) |
| ls -lR no slower than gocryptfs | $(better ls gocryptfs) × | $(at_least "$(better ls gocryptfs)" 1.0) |
| stat no slower than gocryptfs | $(better stat gocryptfs) × | $(at_least "$(better stat gocryptfs)" 1.0) |
| md5sum no slower than gocryptfs | $(better md5 gocryptfs) × | $(at_least "$(better md5 gocryptfs)" 1.0) |

### Format 2 against format 1, and the chunk size, through the mount

The same reads in the same rounds through format 1 as shipped before format 2 (64 KiB chunks,
built by scripts/bench-v1.sh), format 2 with 64 KiB chunks and format 2 as built ($chunk chunks).
Warm: the page cache dropped, then the file's object read into it again, so every byte is
verified and decrypted again while none waits for the disk.

| test | format 1, 64 KiB | format 2, 64 KiB | **format 2, $chunk** | ÷ format 1 | 64 KiB ÷ format 1 | 64 KiB vs gocryptfs |
|---|---:|---:|---:|---:|---:|---:|
$(format_row seq "cold sequential, MB/s")
$(format_row rand4k "cold random 4 KiB, IOPS")
$(format_row rand128k "cold random 128 KiB, IOPS")
$(format_row seqwarm "warm sequential, MB/s")
$(format_row rand4kwarm "warm random 4 KiB, IOPS")
$(format_row rand128kwarm "warm random 128 KiB, IOPS")
$(format_row md5 "md5sum every file, ms")

| target (format 2 as built against format 1) | measured | |
|---|---:|---|
| cold sequential read ≥ 0.9 × format 1 | $(better seq fspf-v1) × | $(at_least "$(better seq fspf-v1)" 0.9) |
| warm sequential read ≥ 0.6 × format 1 | $(better seqwarm fspf-v1) × | $(at_least "$(better seqwarm fspf-v1)" 0.6) |
| warm random 128 KiB ≥ 0.6 × format 1 | $(better rand128kwarm fspf-v1) × | $(at_least "$(better rand128kwarm fspf-v1)" 0.6) |
| warm random 4 KiB ≥ 0.6 × format 1 | $(better rand4kwarm fspf-v1) × | $(at_least "$(better rand4kwarm fspf-v1)" 0.6) |

### In-process reading (libfspf) against the mount

The same volume (format 2, $chunk chunks) read by one process with $bench_threads threads in 128 KiB requests
(\`scripts/read-bench.c\`): through the mount with \`pread(2)\`, and in-process through libfspf's
\`fspf_pread\`. Warm as above: the object in the page cache, every byte verified and decrypted
again, none waiting for the disk. Sequential: the file cut into one part per thread, each read
front to back; random: every 128 KiB block once in a random order (no request finds plaintext a
previous one left in a cache). MB/s, medians of $RUNS rounds.

| 128 KiB reads, warm | fspf-mount | **libfspf** | libfspf ÷ mount | target |
|---|---:|---:|---:|---|
| sequential, MB/s | $(printf %.0f "$(med libseq fspf)") | $(printf %.0f "$(med libseq libfspf)") | $(ratio "$(med libseq libfspf)" "$(med libseq fspf)") | ≥ 2: $(at_least "$(ratio "$(med libseq libfspf)" "$(med libseq fspf)")" 2) |
| random, MB/s | $(printf %.0f "$(med librand fspf)") | $(printf %.0f "$(med librand libfspf)") | $(ratio "$(med librand libfspf)" "$(med librand fspf)") | ≥ 2: $(at_least "$(ratio "$(med librand libfspf)" "$(med librand fspf)")" 2) |

Runs, MB/s: sequential mount $(list ${results[libseq.fspf]}), libfspf $(list ${results[libseq.libfspf]});
random mount $(list ${results[librand.fspf]}), libfspf $(list ${results[librand.libfspf]}).

<details><summary>Every run</summary>

| test | plain | passthrough_ll | gocryptfs | securefs | fspf-mount | fspf 64 KiB | fspf format 1 |
|---|---|---|---|---|---|---|---|
$(runs_row seq "sequential MB/s")
$(runs_row rand4k "random 4 KiB IOPS")
$(runs_row rand128k "random 128 KiB IOPS")
$(runs_row ls "ls -lR ms")
$(runs_row stat "stat ms")
$(runs_row md5 "md5sum ms")
$(runs_row seqwarm "warm sequential MB/s")
$(runs_row rand4kwarm "warm random 4 KiB IOPS")
$(runs_row rand128kwarm "warm random 128 KiB IOPS")

</details>
MD

#!/usr/bin/env bash
# Part of `make bench`: `fspf encrypt` throughput on a 1 GiB tree next to
# `openssl speed -evp aes-256-gcm` x cores, copying the same tree (cp -r, two parallel
# copies, and into a gocryptfs mount) and format 1's fspf as shipped before (scripts/bench-v1.sh),
# measured interleaved in one run; the hash candidates for the tag tree; the per-chunk-size
# library measurements of both formats behind the default chunk size. Prints markdown.
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh" "$@"
work=$(mktemp -d /dev/shm/fspf-bench-XXXXXX)   # tmpfs: measure crypto and the tool, not the disk
trap 'unmount "$work/gmnt"; rm -rf "$work"' EXIT
cores=$(nproc)

echo "preparing a 1 GiB tree (16 x 64 MiB random files) in $work" >&2
mkdir -p "$work/tree"
for i in $(seq -w 1 16); do head -c 64M /dev/urandom > "$work/tree/part-$i.bin"; done
mkdir -p "$work/gcipher" "$work/gmnt"
printf '%s\n' "$PASSWORD" > "$work/gcipher.pass"
gocryptfs -q -init -passfile "$work/gcipher.pass" "$work/gcipher" > /dev/null
gocryptfs -q -passfile "$work/gcipher.pass" "$work/gcipher" "$work/gmnt"

echo "openssl speed (one core, then $cores processes)" >&2
single=$(openssl speed -evp aes-256-gcm -seconds 3 -bytes 65536 2>/dev/null | awk '/^AES-256-GCM|^aes-256-gcm/ {v=$NF} END {sub(/k$/,"",v); print v*1000/1e6}')
multi=$(openssl speed -evp aes-256-gcm -seconds 3 -bytes 65536 -multi "$cores" 2>/dev/null | awk '/^evp|^aes-256-gcm|^AES-256-GCM/ {v=$NF} END {sub(/k$/,"",v); print v*1000/1e6}')

# Every contender writes 1 GiB of new files on the same tmpfs. Before each, its previous
# output is removed and the machine left idle for a moment, so that all start alike.
rate() { awk -v t="$1" 'BEGIN {print 1073741824 / t / 1e6}'; }
halves() {  # the write floor: the same bytes copied by as many parallel writers as cores
  local i
  for i in $(seq 1 "$cores"); do
    mkdir -p "$work/floor/$i"
    # shellcheck disable=SC2012
    ls "$work/tree" | awk -v n="$cores" -v i="$i" 'NR % n == i - 1' | (cd "$work/tree" && xargs cp -t "$work/floor/$i") &
  done
  wait
}
cpu_fspf=()
encrypt() {
  /usr/bin/time -f '%U %S' -o "$work/cpu" "$FSPF" encrypt "$work/tree" --out "$work/vol" --quiet > /dev/null
  cpu_fspf+=("$(awk '{print $1 + $2}' "$work/cpu")")
  user_fspf+=("$(awk '{print $1}' "$work/cpu")")
}
declare -A out=([floor]="$work/floor" [cp]="$work/copy" [gocryptfs]="$work/gmnt/tree" [fspf]="$work/vol" [fspf1]="$work/vol1")
declare -A rates
echo "contenders, $RUNS rounds" >&2
encrypt; rm -rf "$work/vol"; cpu_fspf=(); user_fspf=()   # warm-up: first use of the binary and fresh pages
for r in $(seq 1 "$RUNS"); do
  for c in floor cp gocryptfs fspf fspf1; do
    rm -rf "${out[$c]}"; sync; sleep 2
    s=$(now)
    case $c in
      floor) halves ;;
      cp) cp -r "$work/tree" "$work/copy" ;;
      gocryptfs) cp -r "$work/tree" "$work/gmnt/tree" ;;
      fspf) encrypt ;;
      fspf1) "$V1/fspf" encrypt "$work/tree" --out "$work/vol1" --quiet > /dev/null ;;
    esac
    rates[$c]="${rates[$c]:-} $(rate "$(elapsed "$s")")"
  done
done
med() { printf '%s\n' ${rates[$1]} | median; }
ideal=$(awk -v a="$single" -v c="$cores" 'BEGIN {print a * c}')
f=$(med fspf)
cpu=$(printf '%s\n' "${cpu_fspf[@]}" | median)
user=$(printf '%s\n' "${user_fspf[@]}" | median)
unmount "$work/gmnt"; rm -rf "$work/vol" "$work/vol1" "$work/tree" "$work/copy" "$work/floor" "$work/gcipher"

# The default chunk size, as a volume records it.
mkdir "$work/one" && echo x > "$work/one/x"
"$FSPF" encrypt "$work/one" --out "$work/one.vol" --key-out "$work/one.key" --quiet > /dev/null
chunk=$("$FSPF" info "$work/one.vol" --key-file "$work/one.key" | awk '/^region/ {print $NF / 1024 " KiB"; exit}')
rm -rf "$work/one" "$work/one.vol" "$work/one.key"
echo "hash candidates, then the chunk-size sweeps (library level, both formats)" >&2
hashes=$("$BENCH" hashes)
sweep=$("$BENCH" "$work" 256)
sweep1=$("$V1/fspf-bench" "$work" 256)

cat <<MD
## \`fspf encrypt\` next to \`openssl speed -evp aes-256-gcm\` and to copying

A 1 GiB tree of 16 random 64 MiB files on tmpfs (/dev/shm), so that no disk hides the cost of the
tools; \`fspf encrypt\` with default options ($chunk chunks, all cores). In each of $RUNS rounds, in
turn: the write floor ($cores parallel \`cp\` of a share of the files each: the same bytes written
as new files with the same parallelism, no crypto), \`cp -r\`, \`cp -r\` into a gocryptfs mount
whose cipher directory is on the same tmpfs, and \`fspf encrypt\`. Medians.
\`openssl speed\` runs with 64 KiB blocks for 3 s.

| measurement | MB/s | runs |
|---|---:|---|
| openssl speed -evp aes-256-gcm, one core | $(printf '%.0f' "$single") | |
| openssl speed -evp aes-256-gcm -multi $cores | $(printf '%.0f' "$multi") | |
| openssl one core × $cores cores | $(printf '%.0f' "$ideal") | |
| write floor: $cores parallel cp | $(printf '%.0f' "$(med floor)") | $(list ${rates[floor]}) |
| cp -r | $(printf '%.0f' "$(med cp)") | $(list ${rates[cp]}) |
| cp -r into gocryptfs | $(printf '%.0f' "$(med gocryptfs)") | $(list ${rates[gocryptfs]}) |
| **fspf encrypt** | **$(printf '%.0f' "$f")** | $(list ${rates[fspf]}) |
| fspf encrypt, format 1 as shipped before | $(printf '%.0f' "$(med fspf1)") | $(list ${rates[fspf1]}) |

| ratio | |
|---|---:|
| fspf encrypt ÷ (openssl × cores) — target ≥ 60 % | **$(awk -v f="$f" -v i="$ideal" 'BEGIN {printf "%.0f %%", 100 * f / i}')** $(at_least "$(ratio "$f" "$ideal")" 0.6) |
| fspf encrypt ÷ format 1's — target ≥ 0.6 | $(ratio "$f" "$(med fspf1)") $(at_least "$(ratio "$f" "$(med fspf1)")" 0.6) |
| fspf encrypt ÷ write floor | $(ratio "$f" "$(med floor)") |
| fspf encrypt ÷ cp -r into gocryptfs | $(ratio "$f" "$(med gocryptfs)") |
| fspf encrypt ÷ cp -r | $(ratio "$f" "$(med cp)") |
| fspf's CPU time for 1 GiB (user + system, median) | $(printf '%.2f' "$cpu") s, of which user $(printf '%.2f' "$user") s |
| user-space throughput per core (1 GiB ÷ user time) ÷ openssl one core | $(awk -v u="$user" -v a="$single" 'BEGIN {printf "%.0f %%", 100 * 1073.741824 / u / a}') |

## The hash of the tag tree

Format 2 hashes every stored byte into the tree (docs/FORMAT.md §6): the candidates from the
libraries FSPF already uses, measured as \`openssl speed\` does (one core, one buffer in cache, the
best of 5), next to the AES-256-GCM they are added to. \`fspf-bench hashes\`:

$hashes

## Chunk size

\`fspf-bench\` (Sources/fspf-bench) writes a 256 MiB random file into a volume per chunk size,
then reads it back through \`VolumeReader\` with a warm page cache: sequentially in 1 MiB reads,
and at random 4 KiB- and 128 KiB-aligned offsets. Each read verifies and decrypts whole chunks,
so small reads from large chunks pay for the whole chunk. Format 2, as built:

$sweep

Format 1, as shipped before (its own fspf-bench, same machine, same run):

$sweep1
MD

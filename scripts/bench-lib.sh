# Shared by the make-bench scripts, sourced with their arguments: the binaries under test
# (from the fspf path given, default .build/release/fspf), statistics, cache dropping, and one
# way to prepare, mount and unmount each file system compared. Each peer runs with its defaults.

FSPF=$(realpath "${1:-.build/release/fspf}")
MOUNT=$(dirname "$FSPF")/fspf-mount
BENCH=$(dirname "$FSPF")/fspf-bench
# Format 1, as shipped before format 2 (scripts/bench-v1.sh builds it).
V1=${FSPF_V1:-$(realpath .build-v1/src/.build/release)}
RUNS=${RUNS:-5}

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
# "1, 2, 3" from whitespace-separated figures, rounded.
list() { printf '%s ' "$@" | awk '{for(i=1;i<=NF;i++) printf "%.0f%s", $i, (i<NF?", ":"")}'; }
# A target's verdict: at_least VALUE TARGET, below VALUE TARGET.
at_least() { awk -v v="$1" -v t="$2" 'BEGIN {print (v >= t ? "met" : "**missed**")}'; }
below() { awk -v v="$1" -v t="$2" 'BEGIN {print (v < t ? "met" : "**missed**")}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN {print e - s}'; }
# Peak resident set (VmHWM) of a process, in MiB.
peak_rss() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# A tree of random files: make_tree ROOT DIRECTORIES MAX_SIZE SEED writes DIRECTORIES
# directories of 100 files each, of 1 B to MAX_SIZE bytes, as ROOT/dNNNN/fNNN.dat.
make_tree() {
  python3 - "$@" <<'PY'
import os, random, sys
root, dirs, largest = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(int(sys.argv[4]))
for d in range(dirs):
    os.makedirs(f"{root}/d{d:04}")
    for f in range(100):
        with open(f"{root}/d{d:04}/f{f:03}.dat", "wb") as out:
            out.write(os.urandom(random.randint(1, largest)))
PY
}

# Waits until a FUSE mount answers at $1.
wait_mounted() {
  for _ in $(seq 1 200); do
    mountpoint -q "$1" && stat "$1" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "bench: $1 did not mount" >&2; return 1
}
unmount() { mountpoint -q "$1" && { fusermount3 -u "$1" 2>/dev/null || umount "$1"; }; true; }

# libfuse's passthrough_ll example, the cost of FUSE without any crypto, built from the
# source that libfuse3-dev ships.
build_passthrough() {
  local src=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
  [ -f "$src" ] || { echo "bench: $src missing (apt-get install libfuse3-dev)" >&2; return 1; }
  # shellcheck disable=SC2046
  gcc -O2 -Wall -o "$1" "$src" $(pkg-config --cflags --libs fuse3)
}

# The peers' volumes are prepared once from the same plain tree: gocryptfs and securefs by
# copying it into a fresh read-write mount, then remounted read-only for the measurements.
PASSWORD=fspf-bench-password
prepare_gocryptfs() {  # plain cipher mnt
  mkdir -p "$2" "$3"
  printf '%s\n' "$PASSWORD" > "$2.pass"
  gocryptfs -q -init -passfile "$2.pass" "$2" >/dev/null
  gocryptfs -q -passfile "$2.pass" "$2" "$3"
  cp -a "$1/." "$3/"
  unmount "$3"
}
mount_gocryptfs() { gocryptfs -q -ro -passfile "$2.pass" "$2" "$3"; wait_mounted "$3"; }
prepare_securefs() {
  mkdir -p "$2" "$3"
  securefs create --pass "$PASSWORD" --pbkdf pkcs5-pbkdf2-hmac-sha256 "$2" >/dev/null
  securefs mount -b --pass "$PASSWORD" "$2" "$3" >/dev/null 2>&1
  wait_mounted "$3"
  cp -a "$1/." "$3/"
  unmount "$3"
}
mount_securefs() { securefs mount -b -o ro --pass "$PASSWORD" "$2" "$3" >/dev/null 2>&1; wait_mounted "$3"; }

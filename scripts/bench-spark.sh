#!/usr/bin/env bash
# Part of `make bench`: the confidential Spark job (examples/nyc-taxi/job.py) on generated
# NYC-taxi Parquet of SPARK_SIZE (default 2GiB), run with spark-submit in local mode on the plain
# directory, through gocryptfs -ro and through fspf-mount (as built; with 64 KiB chunks; format 1
# as shipped before, scripts/bench-v1.sh), and in-process through fspf:// (libfspf in the JVM,
# the volume as built), interleaved round by round
# (SPARK_RUNS rounds, default 5), page cache dropped before each run. The job file is read from
# the same file system as the data. Every run's result must equal the plain one's. Prints markdown.
set -euo pipefail
SPARK_SIZE=${SPARK_SIZE:-2GiB}
. "$(dirname "$0")/bench-lib.sh" "$@"
SPARK_RUNS=${SPARK_RUNS:-5}
root=$(pwd)
export PATH="$root/.venv/bin:$PATH" PYSPARK_PYTHON="$root/.venv/bin/python" SPARK_LOCAL_IP=127.0.0.1
command -v spark-submit > /dev/null || { echo "bench: no spark-submit in .venv (scripts/install-deps.sh --spark)" >&2; exit 69; }
work=$(mktemp -d /var/tmp/fspf-bench-spark-XXXXXX)
systems=(plain gocryptfs fspf fspf-64k fspf-v1 fspf-lib)
mounted=(plain gocryptfs fspf fspf-64k fspf-v1)
cleanup() { for s in "${mounted[@]}"; do unmount "$work/mnt/$s" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

echo "generating $SPARK_SIZE of NYC-taxi Parquet in $work" >&2
mkdir -p "$work/plain"
cp examples/nyc-taxi/job.py "$work/plain/"
python examples/nyc-taxi/generate.py "$work/plain/data" --size "$SPARK_SIZE" > "$work/generate.out"
bytes=$(du -sb "$work/plain/data" | cut -f1)
files=$(find "$work/plain/data" -name '*.parquet' | wc -l)
echo "preparing the volumes" >&2
for s in "${mounted[@]}"; do mkdir -p "$work/mnt/$s"; done
"$FSPF" encrypt "$work/plain" --out "$work/fspf" --key-out "$work/fspf.key" --quiet > "$work/fspf.line"
"$FSPF" encrypt "$work/plain" --out "$work/fspf-64k" --chunk-size 64K --key-out "$work/fspf-64k.key" --quiet > "$work/fspf-64k.line"
"$V1/fspf" encrypt "$work/plain" --out "$work/fspf-v1" --key-out "$work/fspf-v1.key" --quiet > "$work/fspf-v1.line"
chunk=$("$FSPF" info "$work/fspf" --key-file "$work/fspf.key" | awk '/^region/ {print $NF / 1024 " KiB"; exit}')
prepare_gocryptfs "$work/plain" "$work/gocryptfs" "$work/mnt/gocryptfs"
rmdir "$work/mnt/plain"; ln -s "$work/plain" "$work/mnt/plain"
mount_gocryptfs "$work/plain" "$work/gocryptfs" "$work/mnt/gocryptfs"
for f in fspf fspf-64k; do
  "$MOUNT" "$work/$f" "$work/mnt/$f" --key-file "$work/$f.key" --tag "$(awk '{print $9}' "$work/$f.line")"
done
"$V1/fspf-mount" "$work/fspf-v1" "$work/mnt/fspf-v1" --key-file "$work/fspf-v1.key" --tag "$(awk '{print $9}' "$work/fspf-v1.line")"
# fspf:// in-process: the Hadoop file system and libfspf; the job file from the plain directory
# (spark-submit runs Python files from local paths), the data from the volume made for fspf-mount.
scripts/build-lib.sh "$(dirname "$FSPF")/libfspf.so" "$work/lib" > /dev/null
in_process=(--jars "$work/lib/fspf-hadoop.jar" --conf spark.hadoop.fs.fspf.impl=org.fspf.hadoop.FspfFileSystem
            --conf spark.hadoop.fs.fspf.library-dir="$work/lib" --conf spark.hadoop.fs.fspf.volume="$work/fspf"
            --conf spark.hadoop.fs.fspf.key-file="$work/fspf.key" --conf spark.hadoop.fs.fspf.tag="$(awk '{print $9}' "$work/fspf.line")")

# One cold run of the job on system $1; prints wall seconds (spark-submit start to exit) and the
# job's own seconds (read, count and aggregate, without the JVM's and Spark's start-up).
run_job() {
  local d="$work/mnt/$1" out="$work/$1.$2" s
  local args=("$d/job.py" "$d/data")
  [ "$1" = fspf-lib ] && args=("${in_process[@]}" "$work/plain/job.py" fspf:///data)
  drop
  s=$(now)
  spark-submit --master 'local[2]' --driver-memory 4g --conf spark.log.level=WARN --conf spark.ui.enabled=false \
    "${args[@]}" --result "$out.json" > "$out.out" 2> "$out.err" ||
    { echo "bench: the Spark job failed on $1:" >&2; tail -20 "$out.err" >&2; exit 1; }
  local wall; wall=$(elapsed "$s")
  if [ "$1" != plain ] && ! cmp -s "$work/plain.$2.json" "$out.json"; then
    echo "bench: the Spark job's result through $1 differs from the plain run" >&2; exit 1
  fi
  echo "$wall $(sed -n 's/^seconds:.*total \([0-9.]*\)$/\1/p' "$out.out")"
}
declare -A wall job
for r in $(seq 1 "$SPARK_RUNS"); do
  for s in "${systems[@]}"; do
    echo "run $r/$SPARK_RUNS: Spark job on $s" >&2
    read -r w j < <(run_job "$s" "$r")
    wall[$s]="${wall[$s]:-} $w"; job[$s]="${job[$s]:-} $j"
  done
done
rows=$(sed -n 's/^rows: //p' "$work/plain.1.out")
fspf_pid=$(pgrep -n -f "fspf-mount $work/fspf ") && fspf_rss=$(peak_rss "$fspf_pid")

med() { local -n a=$1; printf '%s\n' ${a[$2]} | median; }
secs() { printf '%s ' "$@" | awk '{for(i=1;i<=NF;i++) printf "%.1f%s", $i, (i<NF?", ":"")}'; }
over_plain=$(ratio "$(med wall fspf)" "$(med wall plain)")
lib_over_plain=$(ratio "$(med wall fspf-lib)" "$(med wall plain)")
within() { awk -v v="$1" -v t="$2" 'BEGIN {print (v <= t ? "met" : "**missed**")}'; }
row() {  # label array
  local line="| $1 |" s
  for s in "${systems[@]}"; do line+=" $(printf %.1f "$(med "$2" "$s")") |"; done
  echo "$line $(ratio "$(med "$2" fspf)" "$(med "$2" plain)") | $(ratio "$(med "$2" fspf-lib)" "$(med "$2" plain)") | $(ratio "$(med "$2" fspf)" "$(med "$2" gocryptfs)") | $(ratio "$(med "$2" fspf)" "$(med "$2" fspf-v1)") |"
}
over_v1=$(ratio "$(med wall fspf)" "$(med wall fspf-v1)")
runs_row() { local -n a=$2; local s line="| $1 |"; for s in "${systems[@]}"; do line+=" $(secs ${a[$s]}) |"; done; echo "$line"; }

cat <<MD
## The Spark job: fspf-mount and fspf:// in-process next to the plain directory and gocryptfs

\`examples/nyc-taxi/job.py\` (\`count()\` of every trip, then trips and average fare by
passenger count and payment type) with \`spark-submit --master 'local[2]' --driver-memory 4g\`
(PySpark $("$root/.venv/bin/python" -c 'import pyspark; print(pyspark.__version__)'), $(java -version 2>&1 | head -1 | tr -d '"')), on $(awk -v b="$bytes" 'BEGIN {printf "%.2f GiB", b / 1073741824}') of Parquet
written by \`generate.py --size $SPARK_SIZE\`: $(python3 -c "print(f'{$rows:,}')") trips in $files files (year=/month= partitions).
The job file and the data are read from the file system measured: the plain directory, a
\`gocryptfs -ro\` mount, an \`fspf-mount\` of a volume made by \`fspf encrypt\` with default options
(format 2, $chunk chunks; key from a file), the same with 64 KiB chunks, format 1 as shipped
before format 2 (64 KiB chunks), and \`fspf:///data\` read in-process by the Hadoop file system
over libfspf (\`--jars fspf-hadoop.jar\`, the same format-2 volume, key from a file; no mount; the
job file from the plain directory, as spark-submit runs Python files from local paths). All run in turn in each of $SPARK_RUNS rounds, page cache dropped before
each run; every run's result equals the plain run's. Wall time is \`spark-submit\` from start to
exit; job time is what the job measures itself (reading, counting, aggregating), without the
JVM's and Spark's start-up. Medians; ratios are fspf ÷ the other (below 1: fspf is faster).

| time, s | plain | gocryptfs | **fspf-mount** | format 2, 64 KiB | format 1 | **fspf://** | fspf-mount ÷ plain | fspf:// ÷ plain | fspf-mount ÷ gocryptfs | fspf-mount ÷ format 1 |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$(row "spark-submit wall time" wall)
$(row "job time" job)

| target | measured | |
|---|---:|---|
| Spark job wall time through fspf-mount ≤ 1.10 × plain | $over_plain × | $(within "$over_plain" 1.10) |
| Spark job wall time through fspf:// in-process ≤ 1.05 × plain | $lib_over_plain × | $(within "$lib_over_plain" 1.05) |
| Spark job wall time, format 2 ≤ 1.10 × format 1 | $over_v1 × | $(within "$over_v1" 1.10) |

fspf-mount's peak resident memory over these runs: ${fspf_rss:-?} MiB.

<details><summary>Every run</summary>

| seconds | plain | gocryptfs | fspf-mount | format 2, 64 KiB | format 1 | fspf:// |
|---|---|---|---|---|---|---|
$(runs_row wall wall)
$(runs_row job job)

</details>
MD

#!/usr/bin/env bash
# make demo-spark: the confidential Spark job end to end on this machine.
#   1. generate NYC-taxi Parquet data (examples/nyc-taxi/generate.py; ROWS=N, default 200,000)
#   2. fspf encrypt the job code (reproducible) and the data into two volumes, registered with a
#      local key server under a policy naming fspf-mount's measurement
#   3. mount both with fspf-mount, the keys released after (simulated) attestation
#   4. spark-submit local:///…/job.py from the mount, in local mode, then on a standalone master
#      with two workers on loopback; the same job on the plain files
#   5. the three results must be identical
# Usage: scripts/demo-spark.sh [path/to/fspf]   (fspf-mount beside it; .venv from install-deps --spark)
set -euo pipefail
FSPF=${1:-.build/release/fspf}
FSPF=$(cd "$(dirname "$FSPF")" && pwd)/$(basename "$FSPF")
MOUNT=$(dirname "$FSPF")/fspf-mount
root=$(pwd)
ROWS=${ROWS:-200000}
export PATH="$root/.venv/bin:$PATH" PYSPARK_PYTHON="$root/.venv/bin/python" SPARK_LOCAL_IP=127.0.0.1
command -v spark-submit >/dev/null || { echo "demo-spark: no spark-submit in .venv (scripts/install-deps.sh --spark)" >&2; exit 1; }
work=$(mktemp -d /tmp/fspf-spark-XXXXXX)
source "$(dirname "$0")/keyserver-lib.sh"
pids=()
cleanup() {
  for m in "$work/mnt/code" "$work/mnt/data"; do umount "$m" 2>/dev/null || true; done
  keyserver_stop
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# wait_for FILE PATTERN [COUNT]: until FILE has COUNT lines matching PATTERN (60 s).
wait_for() {
  for _ in $(seq 600); do
    [ "$(grep -c -- "$2" "$1" 2>/dev/null || true)" -ge "${3:-1}" ] && return 0
    sleep 0.1
  done
  echo "demo-spark: timed out waiting for '$2' in $1:" >&2; tail -5 "$1" >&2; exit 1
}
submit() {  # submit NAME MASTER JOB DATA [full]: runs the job, keeps its result as NAME.json
  echo "\$ spark-submit --master $2 $3 $4"
  spark-submit --master "$2" --conf spark.log.level=WARN --conf spark.ui.enabled=false \
    --conf spark.pyspark.python="$PYSPARK_PYTHON" "$3" "$4" --result "$work/$1.json" > "$work/$1.out" 2> "$work/$1.err" ||
    { tail -20 "$work/$1.err" >&2; exit 1; }
  if [ "${5:-}" = full ]; then cat "$work/$1.out"; else grep -E "^(rows|seconds):" "$work/$1.out"; fi
}

step "generate $ROWS NYC-taxi trips as Parquet"
mkdir -p "$work/plain/code"
cp examples/nyc-taxi/job.py "$work/plain/code/"
python examples/nyc-taxi/generate.py "$work/plain/data" --rows "$ROWS"

step "key server, policy, encrypt and register the job code and the data"
keyserver_init >/dev/null
mkdir "$work/volumes"
"$FSPF" encrypt "$work/plain/code" --out "$work/volumes/code" --reproducible --quiet \
  --register "$work/ks" --volume-name code --policy "$work/policy.json"
"$FSPF" encrypt "$work/plain/data" --out "$work/volumes/data" --quiet \
  --register "$work/ks" --volume-name data --policy "$work/policy.json"
"$FSPF" keyserver list --store "$work/ks" | grep tag
keyserver_start

step "mount both volumes; keys and tags from the key server after attestation"
mkdir -p "$work/mnt/code" "$work/mnt/data"
for v in code data; do
  "$MOUNT" "$work/volumes/$v" "$work/mnt/$v" "${broker[@]}"
done
ls -R "$work/mnt" | head -12

step "Spark, local mode, job and data read through fspf-mount"
submit local-mount 'local[2]' "local://$work/mnt/code/job.py" "$work/mnt/data" full

step "Spark standalone: a master and two workers on loopback"
port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
spark-class org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$port" --webui-port 0 > "$work/master.log" 2>&1 &
pids+=($!)
wait_for "$work/master.log" "I have been elected leader"
for w in 1 2; do
  spark-class org.apache.spark.deploy.worker.Worker "spark://127.0.0.1:$port" --cores 1 --memory 1g \
    --webui-port 0 --work-dir "$work/worker-$w" > "$work/worker-$w.log" 2>&1 &
  pids+=($!)
done
wait_for "$work/master.log" "Registering worker" 2
submit cluster-mount "spark://127.0.0.1:$port" "local://$work/mnt/code/job.py" "$work/mnt/data"
grep -h "Launching executor\|Asked to launch executor" "$work"/worker-*.log | sed 's/^.*INFO /  /' | head -4

step "the same job on the plain files"
submit plain 'local[2]' "$work/plain/code/job.py" "$work/plain/data"

step "results"
for r in local-mount cluster-mount; do
  if ! cmp -s "$work/plain.json" "$work/$r.json"; then
    echo "demo-spark: $r differs from the plain run:" >&2
    diff "$work/plain.json" "$work/$r.json" >&2 || true
    exit 1
  fi
done
echo "local mode through the mount, standalone cluster through the mount and the plain run: identical"

#!/usr/bin/env bash
# make demo-spark: the confidential Spark job end to end on this machine.
#   1. generate NYC-taxi Parquet data (examples/nyc-taxi/generate.py; ROWS=N, default 200,000)
#   2. fspf encrypt the job code (reproducible) and the data into two volumes, registered with a
#      local key server under a policy naming fspf-mount's measurement
#   3. mount both with fspf-mount, the keys released after (simulated) attestation
#   4. spark-submit local:///…/job.py from the mount, in local mode, then on a standalone master
#      with two workers on loopback; the same job on the plain files
#   5. the same job with the data read in-process through fspf:// (libfspf in the JVMs, the key
#      from the key server to each JVM: no mount, no FUSE), locally and on the cluster
#   6. the job writing its aggregates as Parquet into an output volume mounted read-write
#      (fspf-mount --create), sealed at the end: the new tag verifies, the decrypted Parquet holds
#      the rows of the same job writing to a plain directory
#   7. all results must be identical
# Usage: scripts/demo-spark.sh [path/to/fspf]   (fspf-mount and libfspf.so beside it, as make release leaves them; .venv and
# the JDK from install-deps --spark)
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
  for m in "$work/mnt/code" "$work/mnt/data" "$work/mnt/out"; do umount "$m" 2>/dev/null || true; done
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
submit() {  # submit NAME MASTER [SPARK-OPTION…] JOB DATA: runs the job, keeps its result as NAME.json
  local name=$1 master=$2; shift 2
  local job=${*: -2:1} data=${*: -1}
  echo "\$ spark-submit --master $master${FSPF_SHOWN:+ $FSPF_SHOWN} $job $data"
  spark-submit --master "$master" --conf spark.log.level=WARN --conf spark.ui.enabled=false \
    --conf spark.pyspark.python="$PYSPARK_PYTHON" "$@" --result "$work/$name.json" > "$work/$name.out" 2> "$work/$name.err" ||
    { tail -20 "$work/$name.err" >&2; exit 1; }
  if [ "${FULL:-}" = 1 ]; then cat "$work/$name.out"; else grep -E "^(rows|seconds):" "$work/$name.out"; fi
}

step "generate $ROWS NYC-taxi trips as Parquet"
mkdir -p "$work/plain/code"
cp examples/nyc-taxi/job.py "$work/plain/code/"
python examples/nyc-taxi/generate.py "$work/plain/data" --rows "$ROWS"

step "key server, policy, encrypt and register the job code and the data"
keyserver_init "$(readlink -f "$(command -v java)")" >/dev/null  # fspf-mount, and the JVM for fspf://
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
FULL=1 submit local-mount 'local[2]' "local://$work/mnt/code/job.py" "$work/mnt/data"

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

step "Spark reading the data in-process: fspf:///… through libfspf in each JVM, no mount for the data"
scripts/build-lib.sh "$(dirname "$FSPF")/libfspf.so" "$work/lib" | sed 's/^/  /'
fspf=(--jars "$work/lib/fspf-hadoop.jar" --conf spark.hadoop.fs.fspf.impl=org.fspf.hadoop.FspfFileSystem
      --conf spark.hadoop.fs.fspf.library-dir="$work/lib" --conf spark.hadoop.fs.fspf.volume="$work/volumes/data"
      --conf spark.hadoop.fs.fspf.key-broker="$keyserver_url" --conf spark.hadoop.fs.fspf.evidence=simulated
      --conf spark.hadoop.fs.fspf.attester-key="$work/attester.key" --conf spark.hadoop.fs.fspf.broker-ca="$work/ks/tls/cert.pem"
      --conf spark.hadoop.fs.fspf.broker-identity="$work/ks/identity.pub")
echo "  spark.hadoop.fs.fspf.*: volume $work/volumes/data, key and tag from $keyserver_url after attestation of each JVM"
FSPF_SHOWN="--jars fspf-hadoop.jar --conf spark.hadoop.fs.fspf.*" submit local-fspf 'local[2]' "${fspf[@]}" "local://$work/mnt/code/job.py" fspf:///
FSPF_SHOWN="--jars fspf-hadoop.jar --conf spark.hadoop.fs.fspf.*" submit cluster-fspf "spark://127.0.0.1:$port" "${fspf[@]}" "local://$work/mnt/code/job.py" fspf:///

step "Spark writing its result into an output volume mounted read-write, sealed at the end"
"$FSPF" keygen > "$work/results.key"
mkdir -p "$work/mnt/out"
"$MOUNT" "$work/volumes/results" "$work/mnt/out" --create --key-file "$work/results.key" --tag-out "$work/results.tag"
echo "\$ spark-submit --master local[2] job.py …/mnt/data --output …/mnt/out/aggregates"
spark-submit --master 'local[2]' --conf spark.log.level=WARN --conf spark.ui.enabled=false --conf spark.pyspark.python="$PYSPARK_PYTHON" \
  "local://$work/mnt/code/job.py" "$work/mnt/data" --output "$work/mnt/out/aggregates" > "$work/output.out" 2> "$work/output.err" ||
  { tail -20 "$work/output.err" >&2; exit 1; }
ls "$work/mnt/out/aggregates" | sed 's/^/  /' | head -4
results_tag=$("$FSPF" seal "$work/mnt/out" --unmount)
echo "  sealed at unmount: tag $results_tag (also in results.tag: pin it for whoever reads the results)"
"$FSPF" verify "$work/volumes/results" --key-file "$work/results.key" --tag "$results_tag"
"$FSPF" decrypt "$work/volumes/results" --out "$work/results-decrypted" --key-file "$work/results.key" --tag "$results_tag"

step "the same job on the plain files"
submit plain 'local[2]' "$work/plain/code/job.py" "$work/plain/data"
spark-submit --master 'local[2]' --conf spark.log.level=WARN --conf spark.ui.enabled=false \
  "$work/plain/code/job.py" "$work/plain/data" --output "$work/plain-output" > /dev/null 2> "$work/plain-output.err" ||
  { tail -20 "$work/plain-output.err" >&2; exit 1; }

step "results"
for r in local-mount cluster-mount local-fspf cluster-fspf; do
  if ! cmp -s "$work/plain.json" "$work/$r.json"; then
    echo "demo-spark: $r differs from the plain run:" >&2
    diff "$work/plain.json" "$work/$r.json" >&2 || true
    exit 1
  fi
done
python - "$work/results-decrypted/aggregates" "$work/plain-output" <<'PY'
import sys
import pyarrow.parquet as pq
a, b = (sorted(map(str, pq.read_table(d).to_pylist())) for d in sys.argv[1:])
if a != b:
    sys.exit("demo-spark: the Parquet written into the output volume differs from the plain run's")
print(f"the {len(a)} aggregate rows written into the output volume equal the plain run's")
PY
echo "local and standalone through the mount, local and standalone through fspf:// in-process, and the plain run: identical"

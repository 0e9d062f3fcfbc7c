#!/usr/bin/env bash
# make fuzz: runs every libFuzzer target for SECONDS each (ASan on), from the seed corpus in
# fixtures/fuzz/<target> plus the kept crash regressions. A target is single-threaded, so
# FUZZ_JOBS of them (default: one per core) run at a time. Prints executions and crashes per
# target; exits 1 on any crash (the input is kept under fuzz-artifacts/ to become a regression)
# or when a target did not run.
set -euo pipefail
BIN=$(realpath "${1:-.build-fuzz/debug/fspf-fuzz}")
SECONDS_PER_TARGET=${2:-60}
JOBS=${FUZZ_JOBS:-$(nproc)}
root=$(pwd)
work=$(mktemp -d /tmp/fspf-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p fuzz-artifacts
targets=(metadata header open key resource quote x509 collateral token broker libfspf)

run_target() {
  local target=$1 seeds=()
  mkdir -p "$work/$target"
  [ -d "$root/fixtures/fuzz/$target" ] && seeds+=("$root/fixtures/fuzz/$target")
  # The real quote and collateral seed their targets straight from the test fixtures.
  case $target in
    quote) cp "$root/fixtures/attestation/sgx-quote-v3.bin" "$work/$target/" ;;
    collateral) cp "$root/fixtures/attestation/sgx-quote-v3.collateral.json" "$work/$target/" ;;
  esac
  [ -d "$root/fixtures/fuzz/regressions/$target" ] && seeds+=("$root/fixtures/fuzz/regressions/$target")
  FSPF_FUZZ_TARGET=$target SWIFT_BACKTRACE=enable=no "$BIN" -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 \
    -artifact_prefix="fuzz-artifacts/$target-" -print_final_stats=1 "$work/$target" ${seeds[@]+"${seeds[@]}"} \
    > "$work/$target.log" 2>&1 || true
}

running=0
for target in "${targets[@]}"; do
  if [ "$running" -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); fi
  run_target "$target" &
  running=$((running + 1))
done
wait

total_runs=0; total_crashes=0; failed=0
printf '%-10s %12s %10s %8s\n' target executions corpus crashes
for target in "${targets[@]}"; do
  runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$work/$target.log")
  runs=${runs:-0}
  crashes=$(ls fuzz-artifacts/ 2>/dev/null | grep -c "^$target-" || true)
  corpus=$(ls "$work/$target" | wc -l)
  printf '%-10s %12s %10s %8s\n' "$target" "$runs" "$corpus" "$crashes"
  if [ "$crashes" -gt 0 ]; then grep -E "ERROR|runtime failure|Fatal" "$work/$target.log" | head -5; fi
  if [ "$runs" -eq 0 ]; then echo "$target did not run:"; tail -3 "$work/$target.log"; failed=1; fi
  total_runs=$((total_runs + runs)); total_crashes=$((total_crashes + crashes))
done
echo "fuzz executions / crashes: $total_runs / $total_crashes"
[ "$failed" -eq 0 ] && [ "$total_crashes" -eq 0 ]

# Sourced by demo.sh and demo-spark.sh: a local key server that releases keys to simulated
# evidence. This machine has no TEE, so the evidence is signed by a local attester key that the
# policy names, and accepted only because the policy says "simulated": true
# (docs/ATTESTATION.md). The MRENCLAVE the simulated attester claims is fspf-mount's SHA-256.
# Needs FSPF, MOUNT and work set.

# keyserver_init [PROGRAM…]: store $work/ks, attester key $work/attester.key, policy
# $work/policy.json naming fspf-mount and each PROGRAM (e.g. the JVM that reads fspf:// in-process).
keyserver_init() {
  "$FSPF" keyserver init --store "$work/ks"
  "$FSPF" attester init --out "$work/attester.key" > "$work/attester.pub"
  local measurements
  measurements=$(sha256sum "$MOUNT" "$@" | awk '{printf "%s\"%s\"", (NR > 1 ? ", " : ""), $1}')
  printf '{"mrenclave": [%s], "simulated": true, "simulated_attesters": ["%s"]}\n' \
    "$measurements" "$(cat "$work/attester.pub")" > "$work/policy.json"
}

# keyserver_start: serves $work/ks on a free loopback port; sets keyserver_pid, and broker to
# the fspf-mount arguments that get keys from it.
keyserver_start() {
  "$FSPF" keyserver serve --store "$work/ks" --listen 127.0.0.1:0 > "$work/ks.out" 2> "$work/ks.err" &
  keyserver_pid=$!
  local url=""
  for _ in $(seq 100); do
    url=$(grep -o 'https://[^ ]*' "$work/ks.out" 2>/dev/null || true)
    [ -n "$url" ] && break
    kill -0 "$keyserver_pid" 2>/dev/null || { cat "$work/ks.err" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$url" ] || { echo "the key server did not start" >&2; exit 1; }
  echo "key server listening on $url"
  broker=(--key-broker "$url" --evidence simulated --attester-key "$work/attester.key" --broker-ca "$work/ks/tls/cert.pem"
          --broker-identity "$work/ks/identity.pub")
  keyserver_url=$url
}

# keyserver_stop: stops it if it runs (SIGTERM: an orderly stop).
keyserver_stop() {
  if [ -n "${keyserver_pid:-}" ]; then kill "$keyserver_pid" 2>/dev/null || true; wait "$keyserver_pid" 2>/dev/null || true; fi
  keyserver_pid=""
}

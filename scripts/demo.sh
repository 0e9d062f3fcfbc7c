#!/usr/bin/env bash
# make demo: encrypt the bundled job and print key and tag as a build script sees them, verify;
# register the volume with a local key server; mount it with the key released after (simulated)
# attestation, run the job from the mount; show other code refused, a tampered copy refused and
# a flipped byte caught; show the key server's audit log.
set -euo pipefail
FSPF=${1:-.build/release/fspf}
FSPF=$(cd "$(dirname "$FSPF")" && pwd)/$(basename "$FSPF")
MOUNT=$(dirname "$FSPF")/fspf-mount
work=$(mktemp -d /tmp/fspf-demo-XXXXXX)
server=""
cleanup() {
  umount "$work/mnt" 2>/dev/null || true
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# flip FILE OFFSET: change one byte (XOR 1), whatever it was.
flip() { b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '); printf "\\$(printf %03o $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
expect_exit() {  # expect_exit CODE WHAT: the status of the command just run ($rc)
  if [ "$rc" -ne "$1" ]; then echo "demo: expected $2 (exit $1), got $rc" >&2; exit 1; fi
  echo "exit code $rc: $2"
}

step "fspf encrypt fixtures/job --out $work/encrypted-files --reproducible"
"$FSPF" encrypt fixtures/job --out "$work/encrypted-files" --reproducible --quiet | tee "$work/keytag.txt"
export DEMO_KEY=$(awk '{print $11}' "$work/keytag.txt")
TAG=$(awk '{print $9}' "$work/keytag.txt")
echo "key: $DEMO_KEY"
echo "tag: $TAG"

step "on disk: no names, no structure, padded sizes"
(cd "$work/encrypted-files" && find . -type f -printf '%s\t%p\n' | sort -k2)

step "fspf ls -lR (with the key)"
"$FSPF" ls -lR "$work/encrypted-files" --key-env DEMO_KEY --tag "$TAG"

step "fspf verify"
"$FSPF" verify "$work/encrypted-files" --key-env DEMO_KEY --tag "$TAG"

step "a key server: the key and tag go to it, with a policy naming the code that may have them"
# This machine has no TEE, so the evidence is simulated: signed by a local attester key that the
# policy names, and accepted only because the policy says "simulated": true (docs/ATTESTATION.md).
# The MRENCLAVE the simulated attester claims is fspf-mount's own SHA-256.
"$FSPF" keyserver init --store "$work/ks"
"$FSPF" attester init --out "$work/attester.key" > "$work/attester.pub"
code=$(sha256sum "$MOUNT" | cut -d' ' -f1)
printf '{"mrenclave": ["%s"], "simulated": true, "simulated_attesters": ["%s"]}\n' "$code" "$(cat "$work/attester.pub")" > "$work/policy.json"
cat "$work/policy.json"
echo "\$ fspf keyserver register --store ks --volume-name encrypted-files --policy policy.json --key-env DEMO_KEY --tag $TAG"
"$FSPF" keyserver register --store "$work/ks" --volume-name encrypted-files --policy "$work/policy.json" --key-env DEMO_KEY --tag "$TAG"
"$FSPF" keyserver serve --store "$work/ks" --listen 127.0.0.1:0 > "$work/ks.out" 2> "$work/ks.err" &
server=$!
url=""
for _ in $(seq 100); do
  url=$(grep -o 'https://[^ ]*' "$work/ks.out" 2>/dev/null || true)
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/ks.err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "demo: the key server did not start" >&2; exit 1; }
echo "key server listening on $url"

step "fspf-mount: key and tag released by the key server after attestation"
broker=(--key-broker "$url" --evidence simulated --attester-key "$work/attester.key" --broker-ca "$work/ks/tls/cert.pem")
mkdir "$work/mnt"
echo "\$ fspf-mount encrypted-files mnt --key-broker $url --evidence simulated --attester-key attester.key --broker-ca ks/tls/cert.pem"
"$MOUNT" "$work/encrypted-files" "$work/mnt" "${broker[@]}"
grep " $work/mnt " /proc/mounts

step "run the job from the mount"
python3 "$work/mnt/job.py" "$work/mnt/data"

step "the mount is read-only"
touch "$work/mnt/new-file" 2>&1 || true

step "unmount"
umount "$work/mnt"
echo "unmounted"

step "other code asks for the key: refused"
set +e
"$MOUNT" "$work/encrypted-files" "$work/mnt" "${broker[@]}" --simulated-mrenclave "$(printf 'ab%.0s' $(seq 32))"
rc=$?
set -e
expect_exit 12 "key source refused - nothing was mounted"

step "a tampered copy is refused"
cp -a "$work/encrypted-files" "$work/tampered"
flip "$work/tampered/volume.fspf" 100
echo "flipped byte 100 of the copy's volume.fspf"
set +e
"$MOUNT" "$work/tampered" "$work/mnt" "${broker[@]}" --volume-name encrypted-files
rc=$?
set -e
expect_exit 10 "integrity failure - nothing was mounted"

step "flip one byte of one object on disk"
object=$(ls -S $(find "$work/encrypted-files/.fspf-objects" -type f) | head -1)
flip "$object" 5000
echo "flipped byte 5000 of ${object#$work/}"
set +e
"$FSPF" verify "$work/encrypted-files" --key-env DEMO_KEY --tag "$TAG"
rc=$?
set -e
expect_exit 10 "integrity failure - the change was caught"

step "the key server's audit log (the key is never in it)"
cut -c1-150 "$work/ks/audit.log"
kill "$server"; wait "$server" || true; server=""

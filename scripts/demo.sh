#!/usr/bin/env bash
# make demo: encrypt the bundled job, print key and tag, verify, mount the volume with the key
# from a key source, run the job from the mount, show tampering refused and caught, unmount;
# then the attested release: a key server gives the key only to the expected code.
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

step "fspf-mount: key from a key file (as an attestation runtime drops it), tag pinned"
(umask 077; echo "$DEMO_KEY" > "$work/volume.key")
mkdir "$work/mnt"
echo "\$ fspf-mount encrypted-files mnt --key-file volume.key --tag $TAG"
"$MOUNT" "$work/encrypted-files" "$work/mnt" --key-file "$work/volume.key" --tag "$TAG"
grep " $work/mnt " /proc/mounts

step "run the job from the mount"
python3 "$work/mnt/job.py" "$work/mnt/data"

step "the mount is read-only"
touch "$work/mnt/new-file" 2>&1 || true

step "unmount"
umount "$work/mnt"
echo "unmounted"

step "a tampered copy is refused"
cp -a "$work/encrypted-files" "$work/tampered"
printf '\x01' | dd of="$work/tampered/volume.fspf" bs=1 seek=100 conv=notrunc status=none
echo "flipped byte 100 of the copy's volume.fspf"
set +e
"$MOUNT" "$work/tampered" "$work/mnt" --key-file "$work/volume.key" --tag "$TAG"
rc=$?
set -e
if [ $rc -ne 10 ]; then echo "demo: expected fspf-mount to refuse with exit 10, got $rc" >&2; exit 1; fi
echo "fspf-mount exit code: $rc (integrity failure) - nothing was mounted"

step "flip one byte of one object on disk"
object=$(ls -S $(find "$work/encrypted-files/.fspf-objects" -type f) | head -1)
printf '\x01' | dd of="$object" bs=1 seek=5000 conv=notrunc status=none
echo "flipped byte 5000 of ${object#$work/}"
set +e
"$FSPF" verify "$work/encrypted-files" --key-env DEMO_KEY --tag "$TAG"
rc=$?
set -e
if [ $rc -ne 10 ]; then echo "demo: expected verify to fail with exit 10, got $rc" >&2; exit 1; fi
echo "verify exit code: $rc (integrity failure) - the change was caught"

step "attested key release: a key server releases the key only to the expected code"
# This machine has no TEE, so the evidence is simulated: signed by a local attester key that the
# policy names, and accepted only because the policy says "simulated": true (docs/ATTESTATION.md).
# The claimed MRENCLAVE is fspf-mount's own SHA-256.
"$FSPF" keyserver init --store "$work/ks"
"$FSPF" attester init --out "$work/attester.key" > "$work/attester.pub"
code=$(sha256sum "$MOUNT" | cut -d' ' -f1)
printf '{"mrenclave": ["%s"], "simulated": true, "simulated_attesters": ["%s"]}\n' "$code" "$(cat "$work/attester.pub")" > "$work/policy.json"
cat "$work/policy.json"
echo "\$ fspf encrypt fixtures/job --out release-demo --register ks --policy policy.json"
"$FSPF" encrypt fixtures/job --out "$work/release-demo" --register "$work/ks" --policy "$work/policy.json" --quiet
"$FSPF" keyserver list --store "$work/ks"
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
broker=(--key-broker "$url" --evidence simulated --attester-key "$work/attester.key" --broker-ca "$work/ks/tls/cert.pem")
echo "\$ fspf-mount release-demo mnt --key-broker $url --evidence simulated --attester-key attester.key --broker-ca ks/tls/cert.pem"
"$MOUNT" "$work/release-demo" "$work/mnt" "${broker[@]}"
python3 "$work/mnt/job.py" "$work/mnt/data" | tail -2
umount "$work/mnt"

step "other code asks for the key: refused"
set +e
"$MOUNT" "$work/release-demo" "$work/mnt" "${broker[@]}" --simulated-mrenclave "$(printf 'ab%.0s' $(seq 32))"
rc=$?
set -e
if [ $rc -ne 12 ]; then echo "demo: expected the broker to refuse (exit 12), got $rc" >&2; exit 1; fi
echo "fspf-mount exit code: $rc (key source refused) - nothing was mounted"

step "the key server's audit log"
cut -c1-160 "$work/ks/audit.log"
kill "$server"; wait "$server" || true; server=""

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
source "$(dirname "$0")/keyserver-lib.sh"
cleanup() {
  umount "$work/mnt" 2>/dev/null || true
  keyserver_stop
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
keyserver_init
cat "$work/policy.json"
echo "\$ fspf keyserver register --store ks --volume-name encrypted-files --policy policy.json --key-env DEMO_KEY --tag $TAG"
"$FSPF" keyserver register --store "$work/ks" --volume-name encrypted-files --policy "$work/policy.json" --key-env DEMO_KEY --tag "$TAG"
keyserver_start

step "fspf-mount: key and tag released by the key server after attestation"
mkdir "$work/mnt"
echo "\$ fspf-mount encrypted-files mnt --key-broker ${broker[1]} --evidence simulated --attester-key attester.key --broker-ca ks/tls/cert.pem --broker-identity ks/identity.pub"
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
keyserver_stop

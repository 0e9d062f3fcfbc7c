#!/usr/bin/env bash
# make demo: encrypt the bundled job, print key and tag, verify, mount the volume with the key
# from a key source, run the job from the mount, show tampering refused and caught, unmount.
set -euo pipefail
FSPF=${1:-.build/release/fspf}
FSPF=$(cd "$(dirname "$FSPF")" && pwd)/$(basename "$FSPF")
MOUNT=$(dirname "$FSPF")/fspf-mount
work=$(mktemp -d /tmp/fspf-demo-XXXXXX)
cleanup() { umount "$work/mnt" 2>/dev/null || true; rm -rf "$work"; }
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

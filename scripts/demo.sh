#!/usr/bin/env bash
# make demo: encrypt the bundled job, print key and tag, verify, run the job from the
# verified plaintext, then show a flipped byte being caught.
set -euo pipefail
FSPF=${1:-.build/release/fspf}
FSPF=$(cd "$(dirname "$FSPF")" && pwd)/$(basename "$FSPF")
work=$(mktemp -d /tmp/fspf-demo-XXXXXX)
trap 'rm -rf "$work"' EXIT
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

step "run the job from the verified plaintext"
"$FSPF" decrypt "$work/encrypted-files" --key-env DEMO_KEY --tag "$TAG" --out "$work/plain"
python3 "$work/plain/job.py" "$work/plain/data"

step "flip one byte of one object on disk"
object=$(find "$work/encrypted-files/.fspf-objects" -type f | sort | head -1)
printf '\x01' | dd of="$object" bs=1 seek=5000 conv=notrunc status=none
echo "flipped byte 5000 of ${object#$work/}"
set +e
"$FSPF" verify "$work/encrypted-files" --key-env DEMO_KEY --tag "$TAG"
rc=$?
set -e
if [ $rc -ne 10 ]; then echo "demo: expected verify to fail with exit 10, got $rc" >&2; exit 1; fi
echo "verify exit code: $rc (integrity failure) - the change was caught"

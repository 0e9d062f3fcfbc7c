#!/usr/bin/env bash
# Build-script template for a confidential Spark image, in the shape SCONE users have it: the
# job code's key and tag parsed from SCONE's output line, the data's as env.sh lines, the CAS
# session rendered with envsubst. Coming from SCONE, the only change is `scone fspf` -> `fspf`
# (docs/DEPLOY.md).
#
#   deploy/scone/build.sh INPUT OUT     INPUT/code: the PySpark job, INPUT/data: the Parquet tree
#
# Writes OUT/encrypted-files (the job volume, reproducible: under the same key the same code
# gives the same volume and tag), OUT/encrypted-data, OUT/env.sh (keys: keep it out of images and logs, mode 0600),
# OUT/session.yaml (the CAS session), OUT/kbs/{code,data}.json (the resources for a
# confidential-containers KBS) and OUT/tags.env (tags only, public).
# Needs FSPF_MOUNT_MRENCLAVE: the MRENCLAVE of the SCONE-built fspf-mount the session admits.
set -euo pipefail
input=$(realpath "$1")
mkdir -p "$2"
out=$(realpath "$2")
here=$(dirname "$(realpath "$0")")
: "${FSPF_MOUNT_MRENCLAVE:?set FSPF_MOUNT_MRENCLAVE to the MRENCLAVE of the SCONE-built fspf-mount}"
umask 077   # keys: env.sh, session.yaml, kbs/
cd "$out"
rm -rf encrypted-files encrypted-data kbs

# The job code, parsed from SCONE's output line as SCONE build scripts do. Their step commands
# (create, addr, addf, encrypt fspf.pb) work too with `fspf` (fixtures/scone/ has published ones),
# with --kernel naming where the files sit at run time, as with SCONE; this form instead makes a
# self-contained directory that can move into an image.
fspf encrypt "$input/code" --out encrypted-files --reproducible --quiet > keytag.txt
DRIVER_MAIN_FSPF_KEY=$(awk '{print $11}' keytag.txt)
DRIVER_MAIN_FSPF_TAG=$(awk '{print $9}' keytag.txt)
rm keytag.txt
{
  echo "export DRIVER_MAIN_FSPF_KEY=$DRIVER_MAIN_FSPF_KEY"
  echo "export DRIVER_MAIN_FSPF_TAG=$DRIVER_MAIN_FSPF_TAG"
} > env.sh

# The data: one command, env.sh lines straight from fspf.
fspf encrypt "$input/data" --out encrypted-data --format env --env-prefix DATA_FSPF --quiet >> env.sh
chmod -R go+rX encrypted-files encrypted-data   # ciphertext, for images and shared storage

# shellcheck source=/dev/null
. ./env.sh
export FSPF_MOUNT_MRENCLAVE
# Only these variables are substituted; the list is literal on purpose.
# shellcheck disable=SC2016
envsubst '$DRIVER_MAIN_FSPF_KEY $DRIVER_MAIN_FSPF_TAG $DATA_FSPF_KEY $DATA_FSPF_TAG $FSPF_MOUNT_MRENCLAVE' \
  < "$here/session.yaml.template" > session.yaml
# shellcheck disable=SC2016
envsubst '$DRIVER_MAIN_FSPF_KEY $DRIVER_MAIN_FSPF_TAG $DATA_FSPF_KEY $DATA_FSPF_TAG' \
  < "$here/runtime-session.yaml.template" > runtime-session.yaml
mkdir kbs
printf '{"key": "%s", "tag": "%s"}\n' "$DRIVER_MAIN_FSPF_KEY" "$DRIVER_MAIN_FSPF_TAG" > kbs/code.json
printf '{"key": "%s", "tag": "%s"}\n' "$DATA_FSPF_KEY" "$DATA_FSPF_TAG" > kbs/data.json
printf 'CODE_FSPF_TAG=%s\nDATA_FSPF_TAG=%s\n' "$DRIVER_MAIN_FSPF_TAG" "$DATA_FSPF_TAG" > tags.env
echo "job volume $out/encrypted-files tag $DRIVER_MAIN_FSPF_TAG; data volume $out/encrypted-data tag $DATA_FSPF_TAG"
echo "keys in $out/env.sh, $out/session.yaml, $out/runtime-session.yaml and $out/kbs (0600): upload, then delete"

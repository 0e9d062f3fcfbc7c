#!/usr/bin/env bash
# make image: builds deploy/container/Dockerfile, unchanged, with podman (Debian's). No container
# registry is reachable here, so the images the Dockerfile starts from are made locally first and
# passed as its build arguments (each made once, kept in podman's storage):
#   localhost/debian:bookworm-minbase  debootstrap --variant=minbase (scripts/debian-chroot.sh),
#                                      for debian:bookworm-slim (RUNTIME_IMAGE)
#   localhost/swift-builder:bookworm   that base with the Debian packages Docker Hub's
#                                      swift:6.3-bookworm installs, for SWIFT_IMAGE and
#                                      SWIFT_LIB_IMAGE; the toolchain (/opt/swift, 3.3 GB) is
#                                      mounted into the build, not copied into a layer
#   localhost/spark-standin:VERSION    (target spark) the base with the Spark jars of the .venv's
#                                      PySpark at /opt/spark/jars, Python and Spark's user 185,
#                                      standing in for apache/spark's python3 image (SPARK_IMAGE)
# SwiftPM inside the build reaches its packages as on the host: /etc/gitconfig and the mirror
# directories it names are mounted read-only. Builds use the host's network (apt in RUN lines)
# and never pull.
#
# Usage: scripts/build-image.sh [TARGET [TAG]]   TARGET runtime (default), job or spark;
#        TAG defaults to localhost/fspf-TARGET; JOB_VOLUME=DIR (target job): the encrypted volume
#        to bake in (output of fspf encrypt). Root.
# The last two lines printed say how to run the image on this machine:
#   PODMAN="podman --runtime runc --cgroup-manager cgroupfs"   RUN_OPTIONS="--ulimit …"
# (crun refuses this machine's hybrid cgroup layout; podman's default rlimits exceed the hard ones).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-runtime}
tag=${2:-localhost/fspf-$target}
case $target in runtime|job|spark) ;; *) echo "build-image: unknown target $target (runtime, job or spark)" >&2; exit 64 ;; esac
command -v podman > /dev/null || { echo "build-image: podman is missing (scripts/install-deps.sh --packaging)" >&2; exit 1; }
[ -x /opt/swift/usr/bin/swift ] || { echo "build-image: no Swift toolchain at /opt/swift" >&2; exit 1; }

podman=(podman --runtime runc --cgroup-manager cgroupfs)
# Open files and processes: as many as podman asks for, but no more than this machine allows
# (runc also refused nproc at the hard limit, 96,365, here; 32,768 works).
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ] && nofile=1048576
nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
limits=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
build=("${podman[@]}" build --pull=never --network host "${limits[@]}")

have() { "${podman[@]}" image exists "$1"; }
work=$(mktemp -d /tmp/fspf-image-XXXXXX)
trap 'rm -rf "$work"' EXIT

base=localhost/debian:bookworm-minbase
if ! have "$base"; then
  tarball=$("$root/scripts/debian-chroot.sh" --tarball)
  "${podman[@]}" import --change 'CMD ["/bin/bash"]' "$tarball" "$base" > /dev/null
fi

builder=localhost/swift-builder:bookworm
if ! have "$builder"; then
  cat > "$work/Containerfile" <<EOF
FROM $base
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
    binutils binutils-gold ca-certificates gcc git gnupg2 libc6-dev libcurl4-openssl-dev libedit2 \\
    libgcc-12-dev libncurses-dev libpython3-dev libsqlite3-0 libstdc++-12-dev libxml2-dev libz3-dev \\
    pkg-config tzdata uuid-dev zlib1g-dev && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/swift/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF
  "${build[@]}" -t "$builder" -f "$work/Containerfile" "$work"
fi

args=(--build-arg "SWIFT_IMAGE=$builder" --build-arg "SWIFT_LIB_IMAGE=$builder" --build-arg "RUNTIME_IMAGE=$base")
if [ "$target" = spark ]; then
  jars=$(ls -d "$root"/.venv/lib/python3*/site-packages/pyspark/jars 2>/dev/null | head -1)
  [ -n "$jars" ] || { echo "build-image: no PySpark in .venv (scripts/install-deps.sh --spark)" >&2; exit 1; }
  spark_version=$("$root/.venv/bin/python" -c 'import pyspark; print(pyspark.__version__)')
  standin=localhost/spark-standin:$spark_version
  if ! have "$standin"; then
    mkdir "$work/spark" && cp -a "$jars" "$work/spark/jars"
    cat > "$work/spark/Containerfile" <<EOF
FROM $base
COPY jars /opt/spark/jars
RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/* \\
 && useradd --uid 185 --no-create-home --home-dir /opt/spark spark
USER 185
EOF
    "${build[@]}" -t "$standin" -f "$work/spark/Containerfile" "$work/spark"
  fi
  args+=(--build-arg "SPARK_IMAGE=$standin")
else
  # Not built for these targets, but every stage's base must name a local image (--pull=never).
  args+=(--build-arg "SPARK_IMAGE=$base")
fi
if [ "$target" = job ]; then
  volume=${JOB_VOLUME:?build-image: target job needs JOB_VOLUME=DIR (an encrypted volume)}
  [ -d "$volume" ] || { echo "build-image: $volume: no such directory" >&2; exit 1; }
  args+=(--build-context "job-volume=$(cd "$volume" && pwd)")
fi

mounts=(-v /opt/swift:/opt/swift:ro -v /etc/gitconfig:/etc/gitconfig:ro)
while read -r mirror; do
  [ -d "$mirror" ] && mounts+=(-v "$mirror:$mirror:ro")
done < <(git config --system --get-regexp '^url\..*\.insteadof$' 2>/dev/null | awk '{print $1}' | sed -e 's/^url\.//' -e 's/\.insteadof$//' | sort -u)

"${build[@]}" "${mounts[@]}" "${args[@]}" --target "$target" -t "$tag" \
  -f "$root/deploy/container/Dockerfile" "$root"
echo "built $tag"
echo "PODMAN=\"${podman[*]}\""
echo "RUN_OPTIONS=\"${limits[*]}\""

#!/usr/bin/env bash
# Lays out the in-process readers in OUT: libfspf.so (make release's, or SwiftPM's libFSPFLibrary.so) with
# include/fspf.h and a pkg-config-free layout, and the Hadoop file system — fspf-hadoop.jar
# (javac against the hadoop-client-api jar PySpark ships; nothing from a Java registry) and
# libfspf_jni.so (RUNPATH $ORIGIN: it finds libfspf.so beside itself).
# Usage: scripts/build-lib.sh LIBFSPF.so OUT   (make lib: .build/release → .build/lib)
# Needs a JDK (javac, jni.h) and the project's .venv with PySpark (scripts/install-deps.sh --spark).
set -euo pipefail
LIBRARY=$(realpath "${1:?path to libfspf.so}")
OUT=${2:?output directory}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT/include"
OUT=$(realpath "$OUT")
cp "$LIBRARY" "$OUT/libfspf.so"
cp "$root/include/fspf.h" "$OUT/include/"

javac=$(command -v javac || true)
[ -n "$javac" ] || { echo "build-lib: no javac (scripts/install-deps.sh --spark installs the JDK)" >&2; exit 1; }
java_home=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$javac")")")}
api=${HADOOP_CLIENT_API:-$(ls "$root"/.venv/lib/python3*/site-packages/pyspark/jars/hadoop-client-api-*.jar 2>/dev/null | head -1)}
[ -f "$api" ] || { echo "build-lib: no hadoop-client-api jar (PySpark's; set HADOOP_CLIENT_API)" >&2; exit 1; }

${CC:-clang} -shared -fPIC -O2 -g -Wall -Wextra -Werror -std=c11 -I "$root/include" -I "$java_home/include" \
  -I "$java_home/include/linux" "$root/java/native/fspf_jni.c" -L "$OUT" -lfspf -Wl,-rpath,'$ORIGIN' \
  ${JNI_CFLAGS:-} -o "$OUT/libfspf_jni.so"

classes=$(mktemp -d)
trap 'rm -rf "$classes"' EXIT
"$javac" --release 11 -encoding UTF-8 -Xlint:all -Werror -cp "$api" -d "$classes" "$root"/java/src/org/fspf/hadoop/*.java
"$(dirname "$javac")/jar" cf "$OUT/fspf-hadoop.jar" -C "$classes" . -C "$root/java/resources" .
echo "built $OUT: libfspf.so include/fspf.h libfspf_jni.so fspf-hadoop.jar"

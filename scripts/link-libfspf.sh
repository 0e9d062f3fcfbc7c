#!/usr/bin/env bash
# Links libfspf.so with the Swift runtime inside (make release). SwiftPM links a dynamic library
# product against the toolchain's shared runtime even with --static-swift-stdlib (RUNPATH into the
# toolchain: on a machine without Swift it does not load), so the objects of `swift build
# --target libfspf` are linked here by swiftc -static-stdlib: libfspf and the Swift targets it
# depends on (from `swift package describe`), the runtime's own symbols kept out of the exports,
# every symbol resolved at link time, SONAME libfspf.so.
# Usage: scripts/link-libfspf.sh BUILDDIR OUT.so   (BUILDDIR: .build/release)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?build directory, e.g. .build/release}" && pwd)
out=${2:?output library}
mapfile -t targets < <(cd "$root" && swift package describe --type json | python3 -c '
import json, sys
targets = {t["name"]: t for t in json.load(sys.stdin)["targets"]}
seen, todo = [], ["libfspf"]
while todo:
    name = todo.pop()
    if name in seen or targets[name]["module_type"] != "SwiftTarget":
        continue
    seen.append(name)
    todo += targets[name].get("target_dependencies", [])
print("\n".join(seen))')
objects=()
for t in "${targets[@]}"; do
  found=("$build/$t.build"/*.o)
  [ -e "${found[0]}" ] || { echo "link-libfspf: no objects in $build/$t.build (swift build --target libfspf first)" >&2; exit 1; }
  objects+=("${found[@]}")
done
swiftc -emit-library -static-stdlib -Xlinker -soname=libfspf.so -Xlinker --exclude-libs -Xlinker ALL \
  -Xlinker --no-undefined "${objects[@]}" -o "$out" 2> "$out.log" \
  || { grep -v 'mktemp' "$out.log" >&2; exit 1; }
rm -f "$out.log"

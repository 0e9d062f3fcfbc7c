#!/usr/bin/env bash
# make man: man pages for fspf and fspf-mount, a page per command and subcommand (fspf.1,
# fspf.encrypt.1, …), written by swift-argument-parser's generate-manual from what the binaries
# describe of themselves (--experimental-dump-help), so they say what the code does.
# generate-manual is built from the swift-argument-parser this package resolved, in a build
# directory of its own (the plugin form would rebuild the package with other flags).
# Usage: scripts/build-man.sh BINDIR OUTDIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "${1:?directory with fspf and fspf-mount}" && pwd)
out=${2:?output directory}
checkout=$(cd "$root" && swift package show-dependencies --format json | python3 -c '
import json, sys
def find(node):
    for d in node.get("dependencies", []):
        if d["identity"] == "swift-argument-parser":
            return d["path"]
        found = find(d)
        if found:
            return found
print(find(json.load(sys.stdin)) or "")')
[ -d "$checkout/Tools/generate-manual" ] || { echo "make man: no swift-argument-parser checkout with Tools/generate-manual" >&2; exit 1; }
tool_build=$root/.build/generate-manual
swift build -c release --package-path "$checkout" --scratch-path "$tool_build" --product generate-manual > /dev/null
# The date of the last change, not of the build: the same source gives the same pages.
date=$(git -C "$root" log -1 --format=%cs 2> /dev/null || date -u +%F)
rm -rf "$out"
mkdir -p "$out"
for tool in fspf fspf-mount; do
  "$tool_build/release/generate-manual" "$bin/$tool" --multi-page --date "$date" --section 1 \
    --authors 'FSPF contributors' --output-directory "$out"
done
echo "make man: $(ls "$out" | wc -l) pages in $out" >&2

import Foundation
import FSPFSystem
import Glibc

/// libfspf as the tests build and load it: the library of the running build, the C check program
/// (Tests/libfspfTests/c/fspf_check.c) compiled against include/fspf.h, and a volume for it.
/// Shared by the C, Python and Hadoop tests, which live in two test targets.
public enum CLibrary {
    /// SwiftPM's name for libfspf in the running build (.build/debug, or a sanitizer build's).
    public static let path = Paths.parent(Tool.binary) + "/libFSPFLibrary.so"
    /// In `make test-asan` the library itself is instrumented, so every program that loads it must be.
    public static let sanitizerFlag = ProcessInfo.processInfo.environment["FSPF_SANITIZED"] != nil ? "-fsanitize=address" : ""

    /// The toolchain's AddressSanitizer runtime, for programs not built with it (python, java).
    public static func asanRuntime() throws -> String {
        let r = Tool.sh("clang -print-file-name=libclang_rt.asan-x86_64.so", cwd: "/")
        let path = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
        guard FileManager.default.fileExists(atPath: path) else { throw Missing(what: "the ASan runtime", path: path) }
        return path
    }

    public struct Missing: Error, CustomStringConvertible {
        public let what: String, path: String
        public var description: String { "no \(what) at '\(path)'" }
    }

    /// Compiles the check program into `s` (with `extra` flags) against a `lib/libfspf.so` there.
    public static func compile(_ s: Sandbox, _ output: String, _ extra: String = "") -> Tool.Result {
        s.sh("""
            set -e
            mkdir -p lib && ln -sf '\(path)' lib/libfspf.so
            clang -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pedantic -g \(extra) -I '\(Tool.packageRoot)/include' \
              '\(Tool.packageRoot)/Tests/libfspfTests/c/fspf_check.c' -o \(output) -L lib -lfspf -Wl,-rpath,"$PWD/lib" -lpthread
            """)
    }

    /// A tree with sizes around the 16 KiB default chunk, a 5 MiB file (parallel reads), nested
    /// directories, a symlink, an empty file and a name outside ASCII; encrypted; and a copy whose
    /// largest object has one byte altered in the middle of its data.
    public static func makeVolume(_ s: Sandbox) -> (tag: String, Tool.Result) {
        let r = s.sh(#"""
            set -e
            mkdir -p in/data/nested/deeper in/empty-dir
            n=0
            for size in 0 1 16383 16384 16385 49152 1000003 5242887; do
              n=$((n + 1))
              if [ $((n % 2)) = 0 ]; then d=in/data; else d=in/data/nested/deeper; fi
              head -c $size /dev/urandom > $d/part-$n.bin
            done
            printf 'print("in process")\n' > in/job.py && chmod 0755 in/job.py
            printf 'names are sealed\n' > 'in/ünïcødé name.txt' && chmod 0600 'in/ünïcødé name.txt'
            ln -s job.py in/link
            touch -d '2021-03-04 05:06:07.123456789' in/data/part-2.bin
            fspf encrypt in --out vol --key-out key.hex --format json > vol.json
            python3 -c 'import json; print(json.load(open("vol.json"))["full_tag"])' > tag
            cp -a vol tampered
            big=$(find tampered/.fspf-objects -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
            size=$(stat -c %s "$big")
            \#(Sandbox.flipFunction)
            flip "$big" $((size / 3))
            """#)
        return ((try? String(contentsOfFile: s.path + "/tag", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "", r)
    }
}

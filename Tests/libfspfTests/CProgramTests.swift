import Foundation
import Testing
import FSPFTestSupport

/// libfspf as C sees it: c/fspf_check.c, compiled against include/fspf.h with every warning as
/// an error and linked against the built libfspf.so, walks volumes and checks every byte,
/// every error code and concurrent reads — plain and under AddressSanitizer.
@Suite(.serialized) struct CProgramTests {
    static let library = Build.directory + "/libFSPFLibrary.so"
    /// In `make test-asan` the library itself is instrumented, so every program that loads it must be.
    static let sanitized = ProcessInfo.processInfo.environment["FSPF_SANITIZED"] != nil ? "-fsanitize=address" : ""

    /// The toolchain's AddressSanitizer runtime, for programs not built with it (python, java).
    static func asanRuntime() throws -> String {
        let r = Tool.sh("clang -print-file-name=libclang_rt.asan-x86_64.so", cwd: "/")
        let path = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(FileManager.default.fileExists(atPath: path), "no ASan runtime at '\(path)'")
        return path
    }

    /// Compiles the check program into `s` (with `extra` flags) against a `lib/libfspf.so` there.
    static func compile(_ s: Sandbox, _ output: String, _ extra: String = "") -> Tool.Result {
        s.sh("""
            set -e
            mkdir -p lib && ln -sf '\(library)' lib/libfspf.so
            clang -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pedantic -g \(extra) -I '\(Tool.packageRoot)/include' \
              '\(Tool.packageRoot)/Tests/libfspfTests/c/fspf_check.c' -o \(output) -L lib -lfspf -Wl,-rpath,"$PWD/lib" -lpthread
            """)
    }

    /// A tree with sizes around the 16 KiB default chunk, a 5 MiB file (parallel reads), nested
    /// directories, a symlink, an empty file and a name outside ASCII; encrypted; and a copy whose
    /// largest object has one byte altered in the middle of its data.
    static func makeVolume(_ s: Sandbox) -> (tag: String, Tool.Result) {
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

    @Test func cProgramReadsEveryByteAndEveryError() throws {
        let s = Sandbox()
        let (tag, made) = CProgramTests.makeVolume(s)
        try #require(made.status == 0 && tag.count == 64, "\(made.err)")
        let c = CProgramTests.compile(s, "check", CProgramTests.sanitized)
        try #require(c.status == 0, "\(c.out)\(c.err)")
        // Generated volume, with attributes and a tampered copy; the short tag too.
        let r = s.sh("./check --attributes vol key.hex \(tag) in tampered && ./check vol key.hex \(tag.prefix(32)) in")
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(r.out.components(separatedBy: "ok: ").count == 3, "\(r.out)")
        // The reference volume (fixtures/reference, format 2) against its input, by its known tag.
        let ref = Tool.packageRoot + "/fixtures/reference"
        let k = s.sh("./check '\(ref)/volume-v2' '\(ref)/key.hex' aeeeb7d3835293ccae928fa8aefedce13401545411b06fbe4e0a5f73b47e3ad7 '\(ref)/input'")
        #expect(k.status == 0, "\(k.out)\(k.err)")
    }

    /// The same program built with -fsanitize=address: no overflow, use after free or leak on
    /// the library's boundary.
    @Test func cProgramUnderAddressSanitizer() throws {
        let s = Sandbox()
        let (tag, made) = CProgramTests.makeVolume(s)
        try #require(made.status == 0, "\(made.err)")
        let c = CProgramTests.compile(s, "check-asan", "-fsanitize=address -fno-omit-frame-pointer")
        try #require(c.status == 0, "\(c.out)\(c.err)")
        let r = s.sh("./check-asan --attributes vol key.hex \(tag) in tampered", env: ["ASAN_OPTIONS": "detect_leaks=1"])
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(r.out.hasPrefix("ok: "), "\(r.out)")
        #expect(!r.err.contains("AddressSanitizer"), "\(r.err)")
    }
}

enum Build {
    /// Where the running build's products are (.build/debug, or the sanitizer builds' directory).
    static let directory = URL(fileURLWithPath: Tool.binary).deletingLastPathComponent().path
}

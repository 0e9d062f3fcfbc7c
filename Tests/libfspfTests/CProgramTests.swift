import Foundation
import Testing
import FSPFTestSupport

/// libfspf as C sees it: c/fspf_check.c, compiled against include/fspf.h with every warning as
/// an error and linked against the built libfspf.so, walks volumes and checks every byte,
/// every error code and concurrent reads — plain and under AddressSanitizer.
@Suite(.serialized) struct CProgramTests {
    @Test func cProgramReadsEveryByteAndEveryError() throws {
        let s = Sandbox()
        let (tag, made) = CLibrary.makeVolume(s)
        try #require(made.status == 0 && tag.count == 64, "\(made.err)")
        let c = CLibrary.compile(s, "check", CLibrary.sanitizerFlag)
        try #require(c.status == 0, "\(c.out)\(c.err)")
        // Generated volume, with attributes and a tampered copy; the short tag too.
        let r = s.sh("./check --attributes vol key.hex \(tag) in tampered && ./check vol key.hex \(tag.prefix(32)) in")
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(r.out.components(separatedBy: "ok: ").count == 3, "\(r.out)")
        // The reference volume (fixtures/reference, format 2) against its input, by its known tag.
        let ref = ReferenceVolume.path
        let k = s.sh("./check '\(ref)/volume-v2' '\(ref)/key.hex' \(ReferenceVolume.tag) '\(ref)/input'")
        #expect(k.status == 0, "\(k.out)\(k.err)")
    }

    /// The same program built with -fsanitize=address: no overflow, use after free or leak on
    /// the library's boundary.
    @Test func cProgramUnderAddressSanitizer() throws {
        let s = Sandbox()
        let (tag, made) = CLibrary.makeVolume(s)
        try #require(made.status == 0, "\(made.err)")
        let c = CLibrary.compile(s, "check-asan", "-fsanitize=address -fno-omit-frame-pointer")
        try #require(c.status == 0, "\(c.out)\(c.err)")
        let r = s.sh("./check-asan --attributes vol key.hex \(tag) in tampered", env: ["ASAN_OPTIONS": "detect_leaks=1"])
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(r.out.hasPrefix("ok: "), "\(r.out)")
        #expect(!r.err.contains("AddressSanitizer"), "\(r.err)")
    }
}

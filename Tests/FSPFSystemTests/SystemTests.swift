import Foundation
import Glibc
import Testing
import FSPFSystem

/// FSPFSystem's file helpers against someone who can write to the directory they write in.
@Suite struct SystemTests {
    /// writeAtomically's temporary file was `<path>.tmp-<pid>`, opened without O_EXCL and
    /// O_NOFOLLOW: a link planted under that name made the write land in the link's target.
    @Test func writeAtomicallyFollowsNoPlantedLink() throws {
        let dir = NSTemporaryDirectory() + "fspf-system-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        try FileSystem.makeDirectories(dir)
        defer { FileSystem.removeTree(dir) }
        let victim = dir + "/victim"
        try FileSystem.writeAtomically(victim, Array("untouched".utf8), replacing: true)
        let path = dir + "/record.json"
        #expect(symlink(victim, path + ".tmp-\(getpid())") == 0)
        try FileSystem.writeAtomically(path, Array("new record".utf8), replacing: true)
        #expect(try FileSystem.readAll(victim) == Array("untouched".utf8))
        #expect(try FileSystem.readAll(path) == Array("new record".utf8))
        // Nothing left behind but the planted link: no temporary file survives a write.
        let names = try FileSystem.list(dir).map { String(decoding: $0, as: UTF8.self) }.sorted()
        #expect(names == ["record.json", "record.json.tmp-\(getpid())", "victim"])
    }

    /// A volume's backing files were opened with O_NOFOLLOW on the last component only: a region
    /// directory replaced by a link was followed, and a FIFO put in a file's place blocked every
    /// reader that opened it.
    @Test func backingFilesFollowNoLinkAndMustBeRegular() throws {
        let dir = NSTemporaryDirectory() + "fspf-system-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        try FileSystem.makeDirectories(dir + "/volume/real")
        try FileSystem.makeDirectories(dir + "/elsewhere")
        defer { FileSystem.removeTree(dir) }
        try FileSystem.writeAtomically(dir + "/volume/real/file", Array("ok".utf8), replacing: true)
        try FileSystem.writeAtomically(dir + "/elsewhere/file", Array("attacker".utf8), replacing: true)
        #expect(symlink(dir + "/elsewhere", dir + "/volume/linked") == 0)
        #expect(symlink("real/file", dir + "/volume/file-link") == 0)
        #expect(mkfifo(dir + "/volume/real/fifo", 0o644) == 0)
        let volume = try FileDescriptor.open(dir + "/volume", O_RDONLY | O_DIRECTORY)
        #expect(try volume.openForReading(relative: "real/file").readAll(limit: 10) == Array("ok".utf8))
        for refused in ["linked/file", "file-link", "../elsewhere/file", "real/../linked/file"] {
            #expect(throws: FSPFError.self, "\(refused)") { _ = try volume.openForReading(relative: refused) }
        }
        // A reader that waited on the FIFO would hang the test: a writer opens it after 5 s, so a
        // regression shows as a slow open instead.
        let fifo = dir + "/volume/real/fifo"
        DispatchQueue.global().asyncAfter(deadline: .now() + 5) {
            let w = Glibc.open(fifo, O_WRONLY | O_NONBLOCK)
            if w >= 0 { close(w) }
        }
        let started = Date()
        #expect(throws: FSPFError.io(path: "real/fifo", operation: "open (not a regular file)", errno: EIO)) {
            _ = try volume.openForReading(relative: "real/fifo")
        }
        #expect(Date().timeIntervalSince(started) < 4, "opening the FIFO waited for a writer")
    }

    /// Offsets come from libfspf's callers as uint64_t: one beyond off_t's range trapped in the
    /// conversion (found by fspf-fuzz's libfspf target on a not-protected file).
    @Test func offsetsBeyondOffTAreEndOfFile() throws {
        let dir = NSTemporaryDirectory() + "fspf-system-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        try FileSystem.makeDirectories(dir)
        defer { FileSystem.removeTree(dir) }
        try FileSystem.writeAtomically(dir + "/file", Array("data".utf8), replacing: true)
        let fd = try FileDescriptor.open(dir + "/file", O_RDWR)
        var buffer = [UInt8](repeating: 0, count: 16)
        for offset in [UInt64.max, UInt64(Int64.max) + 1, UInt64(Int64.max), UInt64(Int64.max) - 4] {
            #expect(try buffer.withUnsafeMutableBytes { try fd.read(into: $0, at: offset) } == 0, "\(offset)")
        }
        #expect(try buffer.withUnsafeMutableBytes { try fd.read(into: $0, at: 1) } == 3)
        #expect(throws: FSPFError.io(path: dir + "/file", operation: "write", errno: EFBIG)) {
            try buffer.withUnsafeBytes { try fd.write($0, at: UInt64.max - 2) }
        }
    }
}

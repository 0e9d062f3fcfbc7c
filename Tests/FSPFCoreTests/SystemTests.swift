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
        try FileSystem.writeAtomically(victim, Array("untouched".utf8))
        let path = dir + "/record.json"
        #expect(symlink(victim, path + ".tmp-\(getpid())") == 0)
        try FileSystem.writeAtomically(path, Array("new record".utf8))
        #expect(try FileSystem.readAll(victim) == Array("untouched".utf8))
        #expect(try FileSystem.readAll(path) == Array("new record".utf8))
        // Nothing left behind but the planted link: no temporary file survives a write.
        let names = try FileSystem.list(dir).map { String(decoding: $0, as: UTF8.self) }.sorted()
        #expect(names == ["record.json", "record.json.tmp-\(getpid())", "victim"])
    }
}

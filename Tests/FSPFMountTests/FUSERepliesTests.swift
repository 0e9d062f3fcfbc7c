import Glibc
import Logging
import Testing
@testable import FSPFMount
import FSPFSystem

/// The errno a FUSE request answers for what its handler threw, without a kernel mount.
@Suite struct FUSERepliesTests {
    let logger = Logger(label: "test")

    @Test func errnoForEachKindOfError() {
        #expect(FUSEReplies.errno(for: Errno(ENOTEMPTY), logger: logger) == ENOTEMPTY)
        #expect(FUSEReplies.errno(for: Errno(EROFS), logger: logger) == EROFS)
        #expect(FUSEReplies.errno(for: FSPFError.io(path: "o", operation: "write", errno: ENOSPC), logger: logger) == ENOSPC)
        // Anything else (a failed verification included) is EIO, never a made-up code.
        #expect(FUSEReplies.errno(for: FSPFError.integrity(path: "f", reason: "chunk 3"), logger: logger) == EIO)
        struct Other: Error {}
        #expect(FUSEReplies.errno(for: Other(), logger: logger) == EIO)
    }
}

import CFSPFABI
import Dispatch
import Foundation
import Testing
import FSPFSystem
import FSPFTestSupport

/// libfspf's thread-safety claim, through the C declarations of include/fspf.h, in this process
/// (so that `make test-tsan` watches it): many threads share one volume handle and one file
/// handle, open, list, stat and read at once, and close the volume while files are still open.
@Suite struct ConcurrencyTests {
    static func plain(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: ReferenceVolume.path + "/input/" + path)))
    }

    @Test func threadsShareVolumeAndFileHandles() throws {
        let key = (0..<32).map { UInt8($0) }
        var error = fspf_error()
        var volume: OpaquePointer? = nil
        #expect(fspf_volume_open(ReferenceVolume.path + "/volume-v2", key, 32, ReferenceVolume.tag, 0, &volume, &error) == FSPF_OK)
        let v = try #require(volume)
        let files = ["data/multi.bin", "hello.txt", "docs/README.md", "data/ünïcødé name.txt", "empty.txt"]
        let expected = try files.map(ConcurrencyTests.plain)
        var shared: OpaquePointer? = nil
        #expect(fspf_open(v, "data/multi.bin", &shared, &error) == FSPF_OK)
        let sharedFile = try #require(shared)
        let handles = Handles(volume: v, file: sharedFile)
        let failures = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 16) { t in
            var rng = SystemRandomNumberGenerator()
            var error = fspf_error()
            var bad = 0
            for i in 0..<200 {
                let which = (t + i) % files.count
                let want = expected[which]
                // Our own handle, or the shared one, read at a random place.
                var own: OpaquePointer? = nil
                let useShared = which == 0 && i % 2 == 0
                if !useShared && fspf_open(handles.volume, files[which], &own, &error) != FSPF_OK { bad += 1; continue }
                let f = useShared ? handles.file : own!
                let offset = want.isEmpty ? 0 : Int.random(in: 0..<want.count, using: &rng)
                var buffer = [UInt8](repeating: 0, count: Int.random(in: 1...70_000, using: &rng))
                var got = 0
                let status = buffer.withUnsafeMutableBytes { fspf_pread(f, $0.baseAddress, $0.count, UInt64(offset), &got, &error) }
                if status != FSPF_OK || buffer[0..<got] != want[offset..<min(want.count, offset + buffer.count)] { bad += 1 }
                fspf_close(own)
                var s = fspf_stat()
                if fspf_stat_path(handles.volume, "data", &s, &error) != FSPF_OK || s.type != FSPF_TYPE_DIRECTORY.rawValue { bad += 1 }
                var dir: OpaquePointer? = nil
                if fspf_list(handles.volume, "/", &dir, &error) != FSPF_OK || fspf_dir_count(dir) != 6 { bad += 1 }
                fspf_dir_close(dir)
            }
            if bad > 0 { failures.withLock { $0 += bad } }
        }
        #expect(failures.withLock { $0 } == 0)
        // Closing the volume first is safe: the file keeps it until it is closed itself.
        fspf_volume_close(v)
        var buffer = [UInt8](repeating: 0, count: expected[0].count)
        var got = 0
        #expect(buffer.withUnsafeMutableBytes { fspf_pread(sharedFile, $0.baseAddress, $0.count, 0, &got, &error) } == FSPF_OK)
        #expect(got == expected[0].count && buffer == expected[0])
        fspf_close(sharedFile)
    }
}

/// The handles the threads share (C pointers; libfspf is what makes sharing them safe).
struct Handles: @unchecked Sendable {
    let volume: OpaquePointer
    let file: OpaquePointer
}

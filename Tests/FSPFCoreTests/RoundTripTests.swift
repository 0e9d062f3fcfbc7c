import Dispatch
import Glibc
import Testing
@testable import FSPFCore
import FSPFCrypto
import FSPFSystem

@Suite struct RoundTripTests {
    /// Sizes at and around chunk boundaries, Padmé buckets and tree-block boundaries.
    static func interestingSizes(_ cs: Int) -> [Int] {
        [0, 1, cs - 1, cs, cs + 1, 2 * cs - 1, 2 * cs, 2 * cs + 1, 4095, 4096, 4097, 256 * cs - 1, 256 * cs, 256 * cs + 1]
    }

    static let names = ["plain.txt", "with space.csv", "ünïcødé-名前-😀.parquet", "e\u{301}.txt", "é.txt",
                        String(repeating: "l", count: 255), ".hidden", "-dash", "percent%20.txt"]

    func makeRandomTree(_ root: String, seed: UInt64, chunk: Int) -> [String: [UInt8]] {
        var rng = SplitMix64(seed: seed)
        var files: [String: [UInt8]] = [:]
        let sizes = RoundTripTests.interestingSizes(chunk)
        var dirs = [""]
        for _ in 0..<Int.random(in: 2...6, using: &rng) {
            let parent = dirs.randomElement(using: &rng)!
            dirs.append(Paths.join(parent, "d\(dirs.count)-" + RoundTripTests.names.randomElement(using: &rng)!.prefix(20)))
        }
        for i in 0..<Int.random(in: 5...14, using: &rng) {
            let name = "\(i)-" + RoundTripTests.names.randomElement(using: &rng)!.prefix(200)
            let path = Paths.join(dirs.randomElement(using: &rng)!, String(name))
            let size = Bool.random(using: &rng) ? sizes.randomElement(using: &rng)! : Int.random(in: 0...300_000, using: &rng)
            files[path] = randomBytes(size, &rng)
        }
        for (p, b) in files { writeFile(root + "/" + p, b) }
        for d in dirs where !d.isEmpty { try! FileSystem.makeDirectories(root + "/" + d) }
        return files
    }

    @Test(arguments: [(UInt64(1), UInt32(4096)), (2, 65536), (3, 16384), (4, 4096), (5, 1 << 20)])
    func randomTreesRoundTrip(seed: UInt64, chunk: UInt32) throws {
        let t = TempDir()
        let files = makeRandomTree(t.sub("in"), seed: seed, chunk: Int(chunk))
        let keys = testKeys()
        let result = try encrypt(t.sub("in"), t.sub("vol"), keys, options(chunk: chunk, reproducible: seed % 2 == 0))
        #expect(result.files == files.count)
        let reader = try VolumeReader(path: t.sub("vol"), keys: keys, expectedTag: result.tag.full)
        for (p, b) in files { #expect(try reader.read(p) == b, "\(p)") }
        // Random ranges, including ones crossing chunk boundaries and past the end.
        var rng = SplitMix64(seed: seed * 31)
        for (p, b) in files where !b.isEmpty {
            for _ in 0..<20 {
                let off = Int.random(in: 0..<(b.count + 10), using: &rng)
                let len = Int.random(in: 0...(3 * Int(chunk)), using: &rng)
                let want = off >= b.count ? [] : Array(b[off..<min(b.count, off + len)])
                #expect(try reader.read(p, offset: UInt64(off), length: len) == want)
            }
        }
        #expect(Verifier.verify(reader).ok)
        // decrypt gives back the input tree.
        try Exporter.decrypt(reader, to: t.sub("out"))
        #expect(treeContents(t.sub("out")) == files)
    }

    /// The reader fetches chunks wanted whole with one pread into the caller's buffer and the
    /// others through scratch; every mix of the two, with buffers of every relevant size (the
    /// padded last chunk must never be counted or overrun a buffer that just fits).
    @Test func readsAcrossWholeAndPartialChunks() throws {
        let t = TempDir()
        let cs = 4096
        var rng = SplitMix64(seed: 77)
        let files = ["a": randomBytes(3 * cs, &rng), "b": randomBytes(3 * cs + 5, &rng),
                     "c": randomBytes(100, &rng), "d": randomBytes(cs - 1, &rng)]
        for (p, b) in files { writeFile(t.sub("in/" + p), b) }
        let keys = testKeys()
        let result = try encrypt(t.sub("in"), t.sub("vol"), keys, options(chunk: UInt32(cs), reproducible: false))
        let reader = try VolumeReader(path: t.sub("vol"), keys: keys, expectedTag: result.tag.full)
        for (p, b) in files {
            let i = try #require(try reader.entryIndex(p))
            for off in Set([0, 1, cs - 1, cs, cs + 1, 2 * cs, b.count - 1, b.count].filter { $0 >= 0 }) {
                for len in Set([1, cs - 1, cs, cs + 1, 2 * cs, 3 * cs, 4 * cs, b.count - off, b.count - off + 1].filter { $0 > 0 }) {
                    var out = [UInt8](repeating: 0xAA, count: len)
                    let n = try out.withUnsafeMutableBytes { try reader.read(entry: i, offset: UInt64(off), into: $0) }
                    let want = off >= b.count ? [] : Array(b[off..<min(b.count, off + len)])
                    #expect(n == want.count && Array(out[0..<n]) == want, "\(p) offset \(off) length \(len)")
                }
            }
        }
    }

    @Test func deepTreeAndEmptyDirectories() throws {
        let t = TempDir()
        var deep = t.sub("in")
        for i in 0..<60 { deep += "/level\(i)" }
        writeFile(deep + "/leaf.txt", Array("deep".utf8))
        try FileSystem.makeDirectories(t.sub("in/empty/dir"))
        let keys = testKeys()
        try encrypt(t.sub("in"), t.sub("vol"), keys)
        let r = try VolumeReader(path: t.sub("vol"), keys: keys)
        let leaf = String(deep.dropFirst(t.sub("in").count + 1)) + "/leaf.txt"
        #expect(try r.read(leaf) == Array("deep".utf8))
        #expect(try r.stat("empty/dir")?.isDirectory == true)
        #expect(try r.list("empty/dir").isEmpty)
        try Exporter.decrypt(r, to: t.sub("out"))
        #expect(FileSystem.isDirectory(t.sub("out/empty/dir")))
    }

    @Test func emptyInputMakesAValidVolume() throws {
        let t = TempDir()
        try FileSystem.makeDirectory(t.sub("in"))
        let keys = testKeys()
        let r = try encrypt(t.sub("in"), t.sub("vol"), keys)
        #expect(try VolumeReader(path: t.sub("vol"), keys: keys, expectedTag: r.tag.short).entries.isEmpty)
    }

    @Test func symlinksAreStoredNotFollowed() throws {
        let t = TempDir()
        writeFile(t.sub("outside/secret"), Array("outside".utf8))
        writeFile(t.sub("in/a"), Array("a".utf8))
        symlink("../outside/secret", t.sub("in/escape"))
        symlink("does-not-exist", t.sub("in/dangling"))
        let keys = testKeys()
        try encrypt(t.sub("in"), t.sub("vol"), keys)
        let r = try VolumeReader(path: t.sub("vol"), keys: keys)
        #expect(try r.readLink("escape") == Array("../outside/secret".utf8))
        #expect(try r.readLink("dangling") == Array("does-not-exist".utf8))
        #expect(r.entries.count == 3)
    }

    /// Every special file is named in the one error, so one run shows what to exclude; with
    /// `--exclude` they are left out.
    @Test func specialFilesAreRefusedAllAtOnce() throws {
        let t = TempDir()
        writeFile(t.sub("in/a"), [1])
        try FileSystem.makeDirectories(t.sub("in/dev/sub"))
        mkfifo(t.sub("in/fifo"), 0o644)
        mkfifo(t.sub("in/dev/sub/pipe"), 0o644)
        #expect(mknod(t.sub("in/dev/null"), S_IFCHR | 0o666, dev_t((1 << 8) | 3)) == 0)
        let sock = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(sock) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = Array(t.sub("in/dev/sock").utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: path) }
        #expect(withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(sock, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } } == 0)
        expectError({ if case .badInput(let p, let why) = $0 {
            return p == t.sub("in") && why.hasPrefix("4 special files") && ["fifo (FIFO)", "pipe (FIFO)", "null (character device)", "sock (socket)"]
                .allSatisfy { why.contains($0) }
        } else { return false } }) {
            try encrypt(t.sub("in"), t.sub("vol"), testKeys())
        }
        #expect(!FileSystem.exists(t.sub("vol")), "nothing left behind")
        var o = options()
        o.excludes = ["fifo", "/dev"]
        let r = try encrypt(t.sub("in"), t.sub("vol"), testKeys(), o)
        #expect(try VolumeReader(path: t.sub("vol"), keys: testKeys(), expectedTag: r.tag.full).entries.map(\.path) == ["a"])
    }

    @Test func outputMustBeNewOrEmpty() throws {
        let t = TempDir()
        writeFile(t.sub("in/a"), [1])
        writeFile(t.sub("busy/x"), [1])
        expectError({ if case .outputExists = $0 { return true } else { return false } }) {
            try encrypt(t.sub("in"), t.sub("busy"), testKeys())
        }
        expectError({ if case .usage = $0 { return true } else { return false } }) {
            try encrypt(t.sub("in"), t.sub("in/vol"), testKeys())
        }
        try FileSystem.makeDirectory(t.sub("empty"))
        try encrypt(t.sub("in"), t.sub("empty"), testKeys())
        #expect(FileSystem.exists(t.sub("empty/volume.fspf")))
    }

    /// Regions: authenticated files are plaintext on disk, not-protected ones too.
    /// An empty file in every region opens, reads as empty and verifies (an authenticated one
    /// used to get no leaf, so it never verified, in format 1 too); a tampered one is caught.
    @Test func emptyFilesInEveryRegion() throws {
        let t = TempDir()
        for p in ["empty", "pub/__init__.py", "logs/empty.log"] { writeFile(t.sub("in/" + p), []) }
        let keys = testKeys()
        let result = try encrypt(t.sub("in"), t.sub("vol"), keys, options(regions: [
            Region(path: "pub", kind: .authenticated, chunkSize: 4096), Region(path: "logs", kind: .notProtected, chunkSize: 4096)]))
        let r = try VolumeReader(path: t.sub("vol"), keys: keys, expectedTag: result.tag.full)
        for p in ["empty", "pub/__init__.py", "logs/empty.log"] { #expect(try r.read(p) == [], "\(p)") }
        #expect(Verifier.verify(r).ok)
        writeFile(t.sub("vol/pub/__init__.py"), [0x23])
        let changed = try VolumeReader(path: t.sub("vol"), keys: keys, expectedTag: result.tag.full)
        #expect(!Verifier.verify(changed).ok)
    }

    @Test func regionsOnDisk() throws {
        let t = TempDir()
        writeFile(t.sub("in/code/job.py"), Array("print(1)\n".utf8))
        writeFile(t.sub("in/pub/readme"), Array("public".utf8))
        writeFile(t.sub("in/pub/enc/inner"), Array("inner secret".utf8))
        writeFile(t.sub("in/logs/x.log"), Array("log".utf8))
        let keys = testKeys()
        try encrypt(t.sub("in"), t.sub("vol"), keys, options(regions: [
            Region(path: "pub", kind: .authenticated, chunkSize: 4096),
            Region(path: "pub/enc", kind: .encrypted, chunkSize: 4096),
            Region(path: "logs", kind: .notProtected, chunkSize: 4096)]))
        #expect(readFile(t.sub("vol/pub/readme")) == Array("public".utf8))
        #expect(readFile(t.sub("vol/logs/x.log")) == Array("log".utf8))
        #expect(!FileSystem.exists(t.sub("vol/pub/enc/inner")) && !FileSystem.exists(t.sub("vol/code")))
        let r = try VolumeReader(path: t.sub("vol"), keys: keys)
        #expect(try r.read("pub/enc/inner") == Array("inner secret".utf8))
        #expect(try r.read("pub/readme") == Array("public".utf8))
        // Authenticated: every read verified.
        writeFile(t.sub("vol/pub/readme"), Array("pubLic".utf8))
        let r2 = try VolumeReader(path: t.sub("vol"), keys: keys)
        expectError({ $0.isIntegrity }) { _ = try r2.read("pub/readme") }
        // Not protected: served as stored, by definition.
        writeFile(t.sub("vol/logs/x.log"), Array("LOG".utf8))
        #expect(try r2.read("logs/x.log") == Array("LOG".utf8))
    }

    /// > 4 GiB input (sparse), 64 KiB chunks: offsets past 32 bits and a three-level tree.
    @Test func largeSparseFile() throws {
        let t = TempDir()
        try FileSystem.makeDirectory(t.sub("in"))
        let size: UInt64 = (4 << 30) + 4097
        let f = try FileDescriptor.open(t.sub("in/big"), O_WRONLY | O_CREAT, mode: 0o644)
        try f.truncate(to: size)
        let marks: [UInt64] = [0, 65534, 65540, (1 << 32) - 3, (1 << 32) + 2, size - 5]
        for m in marks { try Array("MARK!".utf8).withUnsafeBytes { try f.write(UnsafeRawBufferPointer(rebasing: $0[0..<Int(min(5, size - m))]), at: m) } }
        let keys = testKeys()
        let result = try encrypt(t.sub("in"), t.sub("vol"), keys, options(chunk: 65536))
        let r = try VolumeReader(path: t.sub("vol"), keys: keys, expectedTag: result.tag.full)
        #expect(r.entries[0].size == size)
        for m in marks {
            let got = try r.read("big", offset: m, length: 5)
            #expect(got == Array(Array("MARK!".utf8).prefix(Int(min(5, size - m)))), "at \(m)")
        }
        #expect(try r.read("big", offset: 3 << 30, length: 8) == [UInt8](repeating: 0, count: 8))
        #expect(try r.read("big", offset: size - 2, length: 100).count == 2)
        guard case .file(_, _, let p?, _) = r.entries[0].content else { Issue.record("not a protected file"); return }
        #expect(p.geometry.levels == 3)
        // Holes stay holes: the chunks between the marks are neither encrypted nor stored. The
        // Padmé padding past the end (64 MiB here) is stored like data: it hides the size.
        #expect(p.holes == [HoleSpan(first: 2, count: (1 << 16) - 3)])
        let object = try FileSystem.lstatus(r.location(p.object))
        let dense = (p.storedSize - size) + 4 * (1 << 16) + p.geometry.byteCount
        #expect(UInt64(object.st_blocks) * 512 <= dense + (1 << 20), "object allocates \(object.st_blocks * 512) bytes")
        #expect(Verifier.verify(r).ok)
    }

    /// Lazy verification: one read checks its chunk and the tree path only; verified blocks are cached.
    @Test func lazyVerificationAndCache() throws {
        let t = TempDir()
        var rng = SplitMix64(seed: 9)
        let data = randomBytes(1000 * 4096, &rng)
        writeFile(t.sub("in/f"), data)
        let keys = testKeys()
        try encrypt(t.sub("in"), t.sub("vol"), keys, options(chunk: 4096))
        let objects = try objectPaths(t.sub("vol"), keys)
        // Corrupt chunk 10; chunk 700 must stay readable.
        let obj = try FileDescriptor.open(objects["f"]!, O_RDWR)
        try [UInt8(0xff)].withUnsafeBytes { try obj.write($0, at: UInt64(ObjectHeader.size + 10 * 4096 + 7)) }
        let r = try VolumeReader(path: t.sub("vol"), keys: keys)
        #expect(try r.read("f", offset: 700 * 4096 + 5, length: 100) == Array(data[(700 * 4096 + 5)..<(700 * 4096 + 105)]))
        #expect(r.cache.count == 2, "one level-0 block and the top block")
        _ = try r.read("f", offset: 701 * 4096, length: 10)
        #expect(r.cache.count == 2, "same block: served from cache")
        expectError({ $0.isIntegrity }) { _ = try r.read("f", offset: 10 * 4096, length: 1) }
        #expect(try r.read("f", offset: 9 * 4096, length: 4096) == Array(data[(9 * 4096)..<(10 * 4096)]))
    }

    @Test func concurrentReaders() throws {
        let t = TempDir()
        var rng = SplitMix64(seed: 11)
        let a = randomBytes(3_000_000, &rng), b = randomBytes(700_001, &rng)
        writeFile(t.sub("in/a"), a)
        writeFile(t.sub("in/b"), b)
        let keys = testKeys()
        try encrypt(t.sub("in"), t.sub("vol"), keys, options(chunk: 16384))
        let r = try VolumeReader(path: t.sub("vol"), keys: keys, cacheBytes: 8192)
        let failures = FailureCount()
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            var rng = SplitMix64(seed: UInt64(100 + i))
            for _ in 0..<300 {
                let (name, data) = Bool.random(using: &rng) ? ("a", a) : ("b", b)
                let off = Int.random(in: 0..<data.count, using: &rng)
                let len = Int.random(in: 1...100_000, using: &rng)
                if (try? r.read(name, offset: UInt64(off), length: len)) != Array(data[off..<min(data.count, off + len)]) {
                    failures.add()
                }
            }
        }
        #expect(failures.value == 0)
    }
}

import Synchronization
final class FailureCount: Sendable {
    private let n = Atomic<Int>(0)
    func add() { n.add(1, ordering: .relaxed) }
    var value: Int { n.load(ordering: .relaxed) }
}

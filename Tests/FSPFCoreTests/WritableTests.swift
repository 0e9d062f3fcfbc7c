import Glibc
import Testing
@testable import FSPFCore
import FSPFCrypto
import FSPFSystem

/// WritableVolume against a byte model: what a seal writes opens under its tag, verifies clean
/// and reads back exactly; no (file ID, nonce) pair is ever used twice.
@Suite(.serialized) struct WritableTests {
    static let caller = WritableVolume.Caller(uid: 0, gid: 0)

    /// Reads every file of the model back through a fresh reader under `tag`, and verifies.
    @discardableResult
    func check(_ dir: String, _ keys: VolumeKeys, _ tag: VolumeTag, _ model: [String: [UInt8]],
               sourceLocation: SourceLocation = #_sourceLocation) throws -> VerifyReport {
        let reader = try VolumeReader(path: dir, keys: keys, expectedTag: tag.full)
        let report = Verifier.verify(reader)
        #expect(report.ok, "\(report.problems)", sourceLocation: sourceLocation)
        let files = reader.entries.filter(\.isFile).map(\.path).sorted()
        #expect(files == model.keys.sorted(), sourceLocation: sourceLocation)
        for (path, bytes) in model {
            let got = try reader.read(path)
            #expect(got == bytes, "\(path): \(got.count) bytes, expected \(bytes.count)", sourceLocation: sourceLocation)
        }
        return report
    }

    func ino(_ v: WritableVolume, _ name: String, in parent: UInt64 = WritableVolume.rootInode) throws -> UInt64 {
        UInt64(try v.lookup(parent, Array(name.utf8)).st_ino)
    }

    func write(_ v: WritableVolume, _ ino: UInt64, _ offset: Int, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try v.write(ino, at: UInt64(offset), $0) }
    }

    func read(_ v: WritableVolume, _ ino: UInt64, _ offset: Int, _ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let n = try out.withUnsafeMutableBytes { try v.read(ino, at: UInt64(offset), into: $0) }
        return Array(out[0..<n])
    }

    @Test func writesTruncationsAndRenamesSealAndReadBack() throws {
        let t = TempDir()
        let dir = t.path + "/vol"
        let keys = VolumeKeys.generate()
        var model: [String: [UInt8]] = [:]
        var tag: VolumeTag
        do {
            let v = try WritableVolume.create(directory: dir, keys: keys)
            let data = try v.makeDirectory(WritableVolume.rootInode, Array("data".utf8), mode: 0o755, caller: Self.caller)
            let d = UInt64(data.st_ino)
            let a = UInt64(try v.makeFile(d, Array("a".utf8), mode: 0o644, caller: Self.caller).st_ino)
            // Sequential small writes across chunk boundaries, then a hole, then a rewrite.
            var expected: [UInt8] = []
            for i in 0..<40 {
                let piece = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) }
                try write(v, a, expected.count, piece)
                expected += piece
            }
            try write(v, a, 300_000, Array("after a hole".utf8))
            expected += [UInt8](repeating: 0, count: 300_000 - expected.count) + Array("after a hole".utf8)
            try write(v, a, 5, Array("rewritten".utf8))
            expected.replaceSubrange(5..<14, with: Array("rewritten".utf8))
            #expect(try read(v, a, 0, expected.count + 10) == expected)
            try write(v, a, 1_000_000, [])  // writing nothing changes nothing, the size included
            #expect(try v.attributes(a).st_size == expected.count)
            model["data/a"] = expected
            // Truncate down into a chunk, then up: zeros past the cut.
            let b = UInt64(try v.makeFile(d, Array("b".utf8), mode: 0o600, caller: Self.caller).st_ino)
            try write(v, b, 0, [UInt8](repeating: 0xAB, count: 50_000))
            var change = WritableVolume.AttributeChange()
            change.size = 20_001
            _ = try v.setAttributes(b, change)
            change.size = 70_000
            _ = try v.setAttributes(b, change)
            model["data/b"] = [UInt8](repeating: 0xAB, count: 20_001) + [UInt8](repeating: 0, count: 70_000 - 20_001)
            #expect(try read(v, b, 0, 80_000) == model["data/b"]!)
            _ = try v.makeFile(WritableVolume.rootInode, Array("empty".utf8), mode: 0o644, caller: Self.caller)
            model["empty"] = []
            _ = try v.makeSymlink(WritableVolume.rootInode, Array("link".utf8), target: Array("data/a".utf8), caller: Self.caller)
            tag = try v.seal()
            #expect(try v.seal() == tag, "a seal with nothing changed keeps the version")
        }
        try check(dir, keys, tag, model)

        // Reopen at that version: rewrite inside the sealed file, rename over another, unlink.
        do {
            let v = try WritableVolume(path: dir, keys: keys, expectedTag: tag.full)
            let d = try ino(v, "data")
            let a = try ino(v, "a", in: d)
            try write(v, a, 16_380, Array("across the chunk boundary".utf8))
            model["data/a"]!.replaceSubrange(16_380..<(16_380 + 25), with: Array("across the chunk boundary".utf8))
            try v.rename(d, Array("a".utf8), to: d, Array("b".utf8), flags: 0)
            model["data/b"] = model["data/a"]
            model["data/a"] = nil
            #expect(throws: Errno(ENOTEMPTY)) { try v.removeDirectory(WritableVolume.rootInode, Array("data".utf8)) }
            #expect(throws: Errno(EEXIST)) {
                _ = try v.makeFile(d, Array("b".utf8), mode: 0o644, caller: Self.caller)
            }
            try v.unlink(WritableVolume.rootInode, Array("empty".utf8))
            model["empty"] = nil
            let old = tag
            tag = try v.seal()
            #expect(tag != old)
        }
        try check(dir, keys, tag, model)
        // The earlier version is refused under the new tag and vice versa: the pin moves.
        #expect(throws: FSPFError.self) { _ = try VolumeReader(path: dir, keys: keys, expectedTag: Array(repeating: 0, count: 32)) }
    }

    /// After every seal the object store holds exactly the objects the version names, also
    /// when files were rewritten, and when a file was unlinked while open (its object serves
    /// the open handle until its release, then goes).
    @Test func eachSealLeavesExactlyTheNamedObjects() throws {
        let t = TempDir()
        let dir = t.path + "/vol"
        let keys = VolumeKeys.generate()
        let v = try WritableVolume.create(directory: dir, keys: keys, chunkSize: 4096)
        func stored() -> Set<String> {
            var out = Set<String>()
            FileSystem.forEachFile(below: dir + "/.fspf-objects") { path, _ in out.insert(path) }
            return out
        }
        func named(_ tag: VolumeTag) throws -> Set<String> {
            let r = try VolumeReader(path: dir, keys: keys, expectedTag: tag.full)
            return Set(r.entries.compactMap { e in
                guard e.linkOf == nil, case .file(_, _, let p?, _) = e.content, !p.object.isEmpty else { return nil }
                return r.location(p.object)
            })
        }
        var inodes: [String: UInt64] = [:]
        for name in ["a", "b", "c", "d"] {
            let ino = UInt64(try v.makeFile(WritableVolume.rootInode, Array(name.utf8), mode: 0o644, caller: Self.caller).st_ino)
            try write(v, ino, 0, [UInt8](repeating: name.utf8.first!, count: 10_000))
            try v.release(ino)
            inodes[name] = ino
        }
        var tag = try v.seal()
        let first = stored()
        #expect(first == (try named(tag)))
        #expect(first.count == 4)

        // A rewrite replaces a's object; b is unlinked while open and read after the seal; c is
        // written while open, then unlinked: its unwritten chunks still come from its sealed object.
        try v.open(inodes["a"]!, write: true)
        try write(v, inodes["a"]!, 5000, Array("rewritten".utf8))
        try v.release(inodes["a"]!)
        try v.open(inodes["b"]!, write: false)
        try v.unlink(WritableVolume.rootInode, Array("b".utf8))
        try v.open(inodes["c"]!, write: true)
        try write(v, inodes["c"]!, 0, Array("C".utf8))
        try v.flush(inodes["c"]!)
        try v.unlink(WritableVolume.rootInode, Array("c".utf8))
        tag = try v.seal()
        #expect(try read(v, inodes["b"]!, 9990, 10) == [UInt8](repeating: UInt8(ascii: "b"), count: 10))
        #expect(try read(v, inodes["c"]!, 0, 2) == Array("Cc".utf8))
        #expect(try read(v, inodes["c"]!, 9000, 1) == Array("c".utf8))
        #expect(stored().count == 2 + 2 + 1, "a and d named, b's and c's sealed objects held open, c's new content")
        #expect((try named(tag)).isSubset(of: stored()))
        #expect(first.subtracting(stored()).count == 1, "only a's old object went")
        try v.release(inodes["b"]!)
        try v.release(inodes["c"]!)
        #expect(stored() == (try named(tag)), "the released files' objects went with them")

        // Unlinked and released before the seal: the seal removes the object.
        try v.unlink(WritableVolume.rootInode, Array("d".utf8))
        tag = try v.seal()
        #expect(stored() == (try named(tag)))
        #expect(stored().count == 1)
        try check(dir, keys, tag, ["a": Array([UInt8](repeating: UInt8(ascii: "a"), count: 5000) + Array("rewritten".utf8)
                                                + [UInt8](repeating: UInt8(ascii: "a"), count: 10_000 - 5009))])
    }

    /// A closed file holds no descriptor: writing 3,000 files must not take 3,000 (the seal of
    /// a 20,000-file tree failed with EMFILE before).
    @Test func closedFilesHoldNoDescriptors() throws {
        let t = TempDir()
        let keys = VolumeKeys.generate()
        let v = try WritableVolume.create(directory: t.path + "/vol", keys: keys)
        // Only descriptors into this test's directory count: suites run in parallel, and the
        // key server's load tests open hundreds of sockets meanwhile.
        func open() -> Int {
            ((try? FileSystem.list("/proc/self/fd")) ?? []).filter { fd in
                (try? FileSystem.readLink("/proc/self/fd/" + String(decoding: fd, as: UTF8.self))).map { String(decoding: $0, as: UTF8.self).hasPrefix(t.path) } ?? false
            }.count
        }
        let before = open()
        var model: [String: [UInt8]] = [:]
        for i in 0..<3000 {
            let ino = UInt64(try v.makeFile(WritableVolume.rootInode, Array("f\(i)".utf8), mode: 0o644, caller: Self.caller).st_ino)
            try write(v, ino, 0, Array("file \(i)\n".utf8))
            try v.release(ino)
            model["f\(i)"] = Array("file \(i)\n".utf8)
        }
        #expect(open() - before < 50, "\(open() - before) descriptors more after writing 3,000 files")
        let tag = try v.seal()
        #expect(open() - before < 50)
        try check(t.path + "/vol", keys, tag, model)
    }

    /// Random writes, truncations, seals and crashes (a volume dropped without sealing), with
    /// every nonce recorded: no (file ID, nonce) pair twice, and every seal reads back exactly.
    @Test func noNonceIsUsedTwiceUnderRandomRewritesAndCrashes() throws {
        let t = TempDir()
        let dir = t.path + "/vol"
        let keys = VolumeKeys.generate()
        ChunkCipher.nonceLog.withLock { $0.removeAll() }
        ChunkCipher.recording.store(true, ordering: .relaxed)
        defer { ChunkCipher.recording.store(false, ordering: .relaxed) }
        var rng = SystemRandomNumberGenerator()
        var sealedModel: [String: [UInt8]] = [:]
        var tag = try WritableVolume.create(directory: dir, keys: keys, chunkSize: 4096).tag
        var operations = 0
        for round in 0..<12 {
            let v = try WritableVolume(path: dir, keys: keys, expectedTag: tag.full)
            var model = sealedModel
            for step in 0..<150 {
                let name = "f\(Int.random(in: 0..<4, using: &rng))"
                let ino: UInt64
                if model[name] == nil {
                    ino = UInt64(try v.makeFile(WritableVolume.rootInode, Array(name.utf8), mode: 0o644, caller: Self.caller).st_ino)
                    model[name] = []
                } else {
                    ino = UInt64(try v.lookup(WritableVolume.rootInode, Array(name.utf8)).st_ino)
                }
                if Int.random(in: 0..<10, using: &rng) == 0 {
                    let size = Int.random(in: 0..<60_000, using: &rng)
                    var change = WritableVolume.AttributeChange()
                    change.size = UInt64(size)
                    _ = try v.setAttributes(ino, change)
                    let old = model[name]!
                    model[name] = Array(old.prefix(size)) + [UInt8](repeating: 0, count: max(0, size - old.count))
                } else {
                    // Mostly small writes into a few chunks, so chunks are rewritten many times.
                    let offset = Int.random(in: 0..<40_000, using: &rng)
                    let bytes = (0..<Int.random(in: 1..<9000, using: &rng)).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
                    try write(v, ino, offset, bytes)
                    var m = model[name]!
                    if m.count < offset + bytes.count { m += [UInt8](repeating: 0, count: offset + bytes.count - m.count) }
                    m.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
                    model[name] = m
                }
                if step % 37 == 0 { try v.release(ino) }
                operations += 1
            }
            for (name, bytes) in model {
                let ino = UInt64(try v.lookup(WritableVolume.rootInode, Array(name.utf8)).st_ino)
                #expect(try read(v, ino, 0, 70_000) == bytes, "round \(round) \(name)")
            }
            if round % 3 == 2 {
                // A crash: nothing sealed (here, inside a seal's metadata write: its temporary
                // file is left). The last version opens and verifies; what this session wrote is
                // noted as unsealed, never read, and gone after the next open.
                let leftover = dir + "/volume.fspf.tmp-5eed\(round)"
                try FileSystem.writeAtomically(leftover, Array("a metadata being written".utf8), replacing: true)
                let report = try check(dir, keys, tag, sealedModel)
                #expect(report.unsealed.contains(leftover) && report.unsealed.count > 1, "\(report.unsealed)")
                continue
            }
            tag = try v.seal()
            sealedModel = model
            #expect(try check(dir, keys, tag, sealedModel).unsealed.isEmpty, "the open after a crash removes its leftovers")
        }
        try check(dir, keys, tag, sealedModel)
        let log = ChunkCipher.nonceLog.withLock { $0 }
        #expect(log.count > 1000, "\(log.count) chunk encryptions in \(operations) operations")
        #expect(Set(log).count == log.count, "a (file ID, nonce) pair was used twice")
        // Rewrites really reuse chunk positions under one file ID (generations above 0).
        #expect(log.contains { $0[(32 + 8)...] != [0, 0, 0, 0] })
    }
}

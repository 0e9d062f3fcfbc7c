import Glibc
import Testing
@testable import FSPFCore
import FSPFCrypto
import FSPFSystem

/// Each attack a storage adversary can make: detected, and never a wrong byte served.
@Suite struct TamperTests {
    /// A small volume with every region and multi-chunk files.
    func makeVolume(_ t: TempDir, _ keys: VolumeKeys, reproducible: Bool = false) throws -> (original: [String: [UInt8]], tag: [UInt8]) {
        var rng = SplitMix64(seed: 5)
        let files: [String: [UInt8]] = [
            "a.bin": randomBytes(3 * 4096 + 100, &rng),
            "b.bin": randomBytes(3 * 4096 + 100, &rng),
            "small.txt": Array("hi".utf8),
            "empty": [],
            "auth/doc.md": randomBytes(2 * 4096 + 1, &rng),
            "logs/l.txt": Array("log".utf8),
        ]
        for (p, b) in files { writeFile(t.sub("in/" + p), b) }
        let r = try encrypt(t.sub("in"), t.sub("vol"), keys, options(chunk: 4096, reproducible: reproducible, regions: [
            Region(path: "auth", kind: .authenticated, chunkSize: 4096),
            Region(path: "logs", kind: .notProtected, chunkSize: 4096)]))
        return (files, r.tag.full)
    }

    /// Every single-byte change at every offset of every protected on-disk file. The offsets are
    /// dealt to a worker per core, each on its own copy of the volume (the sanitizer runs are long).
    @Test func everySingleByteChangeIsDetected() async throws {
        let t = TempDir()
        let keys = testKeys()
        let (original, _) = try makeVolume(t, keys)
        let files = treeContents(t.sub("vol")).filter { !$0.key.hasPrefix("logs/") }.sorted { $0.key < $1.key }
        let workers = max(2, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let copies = (0..<workers).map { t.sub("vol-\($0)") }
        for copy in copies { #expect(system("cp -a '\(t.sub("vol"))' '\(copy)'") == 0) }
        let tried = await withTaskGroup(of: Int.self) { group in
            for (worker, copy) in copies.enumerated() {
                group.addTask {
                    var tried = 0, index = 0
                    for (rel, bytes) in files {
                        let path = copy + "/" + rel
                        for offset in 0..<bytes.count {
                            defer { index += 1 }
                            guard index % workers == worker else { continue }
                            var changed = bytes
                            changed[offset] ^= 0x01 << UInt8(offset % 8)
                            writeFile(path, changed)
                            expectDetected(copy, keys, original: original)
                            tried += 1
                        }
                        writeFile(path, bytes)
                    }
                    return tried
                }
            }
            return await group.reduce(0, +)
        }
        #expect(tried == files.reduce(0) { $0 + $1.value.count })
        #expect(tried > 20_000)
        for copy in copies {
            #expect(Verifier.verify(try VolumeReader(path: copy, keys: keys)).ok, "restored volume verifies")
        }
    }

    @Test func swappedChunksWithinAFile() throws {
        let t = TempDir()
        let keys = testKeys()
        let (original, _) = try makeVolume(t, keys)
        let obj = try objectPaths(t.sub("vol"), keys)["a.bin"]!
        var b = readFile(obj)
        let c0 = ObjectHeader.size, c1 = ObjectHeader.size + 4096
        let first = Array(b[c0..<c1]), second = Array(b[c1..<(c1 + 4096)])
        b.replaceSubrange(c0..<c1, with: second)
        b.replaceSubrange(c1..<(c1 + 4096), with: first)
        writeFile(obj, b)
        expectDetected(t.sub("vol"), keys, original: original)
        // Swapping the tags along with the data breaks the tree instead.
        let p = try VolumeReader(path: t.sub("vol"), keys: keys)
        guard case .file(_, _, let prot?, _) = try p.stat("a.bin")!.content else { Issue.record("no protection"); return }
        let tags = Int(prot.treeOffset)
        let t0 = Array(b[tags..<(tags + 16)]), t1 = Array(b[(tags + 16)..<(tags + 32)])
        b.replaceSubrange(tags..<(tags + 16), with: t1)
        b.replaceSubrange((tags + 16)..<(tags + 32), with: t0)
        writeFile(obj, b)
        expectDetected(t.sub("vol"), keys, original: original)
    }

    @Test func swappedAndMovedObjects() throws {
        let t = TempDir()
        let keys = testKeys()
        let (original, _) = try makeVolume(t, keys)
        let objs = try objectPaths(t.sub("vol"), keys)
        let a = readFile(objs["a.bin"]!), b = readFile(objs["b.bin"]!)
        writeFile(objs["a.bin"]!, b)
        writeFile(objs["b.bin"]!, a)
        expectDetected(t.sub("vol"), keys, original: original)
        // Same content and size, header rewritten to the victim's file ID: the key differs.
        var forged = b
        forged.replaceSubrange(0..<ObjectHeader.size, with: a[0..<ObjectHeader.size])
        writeFile(objs["a.bin"]!, forged)
        writeFile(objs["b.bin"]!, b)
        expectDetected(t.sub("vol"), keys, original: original)
        // Moved (renamed) object.
        writeFile(objs["a.bin"]!, a)
        try FileSystem.rename(objs["a.bin"]!, objs["a.bin"]! + "x")
        expectDetected(t.sub("vol"), keys, original: original)
    }

    @Test(arguments: [0, 100, 4096 + 64, 4096 + 64 + 1, -1, -16, -17])
    func truncatedObject(at cut: Int) throws {
        let t = TempDir()
        let keys = testKeys()
        let (original, _) = try makeVolume(t, keys)
        let obj = try objectPaths(t.sub("vol"), keys)["a.bin"]!
        let b = readFile(obj)
        writeFile(obj, Array(b[0..<(cut >= 0 ? cut : b.count + cut)]))
        expectDetected(t.sub("vol"), keys, original: original)
    }

    @Test func extendedDeletedAndStrayPieces() throws {
        let t = TempDir()
        let keys = testKeys()
        let (original, _) = try makeVolume(t, keys)
        let objs = try objectPaths(t.sub("vol"), keys)
        let a = readFile(objs["a.bin"]!)
        writeFile(objs["a.bin"]!, a + [0])
        expectDetected(t.sub("vol"), keys, original: original)
        writeFile(objs["a.bin"]!, a + [UInt8](repeating: 0, count: 4096))
        expectDetected(t.sub("vol"), keys, original: original)
        writeFile(objs["a.bin"]!, a)
        // Deleting an object, the plaintext of an authenticated file, or the metadata.
        unlink(objs["small.txt"]!)
        expectDetected(t.sub("vol"), keys, original: original)
        writeFile(objs["small.txt"]!, [])
        unlink(t.sub("vol/auth/doc.md"))
        expectDetected(t.sub("vol"), keys, original: original)
        // A stray piece is reported by verify and never served.
        let t2 = TempDir()
        let (original2, _) = try makeVolume(t2, keys)
        writeFile(t2.sub("vol/.fspf-objects/00/stray"), [1, 2, 3])
        writeFile(t2.sub("vol/extra.txt"), [1])
        let r = try VolumeReader(path: t2.sub("vol"), keys: keys)
        let report = Verifier.verify(r)
        #expect(report.problems.count == 2 && report.problems.allSatisfy { $0.message.contains("unexpected") })
        #expect(throws: FSPFError.self) { _ = try r.read("extra.txt") }
        expectNoWrongBytes(r, original: original2)
    }

    /// Rolling back one file, or the metadata, or the whole volume, to an earlier version
    /// made under the same key.
    @Test(arguments: [false, true])
    func rollback(reproducible: Bool) throws {
        let keys = testKeys()
        let v1 = TempDir(), v2 = TempDir()
        _ = try makeVolume(v1, keys, reproducible: reproducible)
        // v2: same tree, a.bin changed.
        for (p, b) in treeContents(v1.sub("in")) { writeFile(v2.sub("in/" + p), b) }
        var changed = readFile(v2.sub("in/a.bin"))
        changed[0] ^= 1
        writeFile(v2.sub("in/a.bin"), changed)
        let r2 = try encrypt(v2.sub("in"), v2.sub("vol"), keys, options(chunk: 4096, reproducible: reproducible, regions: [
            Region(path: "auth", kind: .authenticated, chunkSize: 4096), Region(path: "logs", kind: .notProtected, chunkSize: 4096)]))
        let original = treeContents(v2.sub("in"))
        let o1 = try objectPaths(v1.sub("vol"), keys), o2 = try objectPaths(v2.sub("vol"), keys)
        #expect(o1["a.bin"]!.split(separator: "/").suffix(2) != o2["a.bin"]!.split(separator: "/").suffix(2))
        // 1. One file's object rolled back (under the new name).
        let saved = readFile(o2["a.bin"]!)
        writeFile(o2["a.bin"]!, readFile(o1["a.bin"]!))
        expectDetected(v2.sub("vol"), keys, original: original, tag: r2.tag.full)
        expectDetected(v2.sub("vol"), keys, original: original)
        writeFile(o2["a.bin"]!, saved)
        // 2. The metadata rolled back.
        let meta = readFile(v2.sub("vol/volume.fspf"))
        writeFile(v2.sub("vol/volume.fspf"), readFile(v1.sub("vol/volume.fspf")))
        for tag in [r2.tag.full, r2.tag.short] {
            expectError({ $0.isIntegrity }) { _ = try VolumeReader(path: v2.sub("vol"), keys: keys, expectedTag: tag) }
        }
        expectDetected(v2.sub("vol"), keys, original: original)
        writeFile(v2.sub("vol/volume.fspf"), meta)
        // 3. The whole volume replaced by the older one: only the pinned tag can tell, and does.
        for tag in [r2.tag.full, r2.tag.short] {
            expectError({ $0.isIntegrity }) { _ = try VolumeReader(path: v1.sub("vol"), keys: keys, expectedTag: tag) }
            #expect(Verifier.verify(try VolumeReader(path: v2.sub("vol"), keys: keys, expectedTag: tag)).ok)
        }
    }

    @Test func mixingTwoVolumesUnderOneKey() throws {
        let keys = testKeys()
        let v1 = TempDir(), v2 = TempDir()
        let (orig1, tag1) = try makeVolume(v1, keys)
        var rng = SplitMix64(seed: 77)
        writeFile(v2.sub("in/a.bin"), randomBytes(3 * 4096 + 100, &rng))
        writeFile(v2.sub("in/other"), randomBytes(999, &rng))
        try encrypt(v2.sub("in"), v2.sub("vol"), keys, options(chunk: 4096))
        // An object of v2 in place of one of v1.
        let o1 = try objectPaths(v1.sub("vol"), keys), o2 = try objectPaths(v2.sub("vol"), keys)
        let saved = readFile(o1["a.bin"]!)
        writeFile(o1["a.bin"]!, readFile(o2["a.bin"]!))
        expectDetected(v1.sub("vol"), keys, original: orig1)
        writeFile(o1["a.bin"]!, saved)
        // v2's metadata brought into v1.
        writeFile(v1.sub("vol/volume.fspf"), readFile(v2.sub("vol/volume.fspf")))
        expectError({ $0.isIntegrity }) { _ = try VolumeReader(path: v1.sub("vol"), keys: keys, expectedTag: tag1) }
        expectDetected(v1.sub("vol"), keys, original: treeContents(v2.sub("in")))
    }
}

/// What the on-disk layout of an encrypted region reveals: no names, no structure, no exact sizes.
@Suite struct LayoutTests {
    @Test func encryptedLayoutHidesNamesStructureAndSizes() throws {
        let t = TempDir()
        let secretNames = ["alpha-secret-name", "beta-hidden-dir", "gamma-private.parquet"]
        writeFile(t.sub("in/alpha-secret-name"), [UInt8](repeating: 1, count: 1))
        writeFile(t.sub("in/beta-hidden-dir/deeper/gamma-private.parquet"), [UInt8](repeating: 2, count: 4000))
        writeFile(t.sub("in/beta-hidden-dir/five-thousand"), [UInt8](repeating: 3, count: 5000))
        writeFile(t.sub("in/five-thousand-one-hundred"), [UInt8](repeating: 4, count: 5100))
        let keys = testKeys()
        try encrypt(t.sub("in"), t.sub("vol"), keys)
        let disk = treeContents(t.sub("vol"))
        for name in secretNames + ["deeper", "five-thousand"] {
            for (path, bytes) in disk {
                #expect(!path.contains(name))
                #expect(bytes.firstRange(of: Array(name.utf8)) == nil, "\(name) appears inside \(path)")
            }
        }
        // Flat: every object at .fspf-objects/xx/name, whatever the input depth.
        let objects = disk.keys.filter { $0 != "volume.fspf" }
        #expect(objects.count == 4 && objects.allSatisfy { $0.split(separator: "/").count == 3 && $0.hasPrefix(".fspf-objects/") })
        // Sizes: 1 and 4000 bytes look alike, so do 5000 and 5100 (Padmé buckets).
        let sizes = try objectPaths(t.sub("vol"), keys).mapValues { readFile($0).count }
        #expect(sizes["alpha-secret-name"] == sizes["beta-hidden-dir/deeper/gamma-private.parquet"])
        #expect(sizes["beta-hidden-dir/five-thousand"] == sizes["five-thousand-one-hundred"])
        // The metadata length is padded too.
        let meta = disk["volume.fspf"]!.count - SealedMetadata.headerSize - 16
        #expect(UInt64(meta) == Padding.padme(UInt64(meta)))
    }
}

/// The nonce rule and reproducible mode.
@Suite struct NonceTests {
    func ids(_ volume: String, _ keys: VolumeKeys) throws -> [String: [UInt8]] {
        let r = try VolumeReader(path: volume, keys: keys)
        var out: [String: [UInt8]] = [:]
        for e in r.entries { if case .file(_, _, let p?, _) = e.content { out[e.path] = p.fileID } }
        return out
    }

    @Test func rebuildsNeverReuseFileKeysOrMetadataNonces() throws {
        let t = TempDir()
        writeFile(t.sub("in/a"), [1, 2, 3])
        writeFile(t.sub("in/b"), [1, 2, 3])
        let keys = testKeys()
        try encrypt(t.sub("in"), t.sub("v1"), keys)
        try encrypt(t.sub("in"), t.sub("v2"), keys)
        let i1 = try ids(t.sub("v1"), keys), i2 = try ids(t.sub("v2"), keys)
        #expect(Set(Array(i1.values) + Array(i2.values)).count == 4, "every file version gets its own file ID, hence its own key")
        #expect(readFile(t.sub("v1/volume.fspf"))[16..<28] != readFile(t.sub("v2/volume.fspf"))[16..<28])
    }

    @Test func reproducibleModeIsByteIdenticalAndContentBound() throws {
        let t = TempDir()
        writeFile(t.sub("in/a"), Array("version 1".utf8))
        writeFile(t.sub("in/b"), Array("unchanged".utf8))
        writeFile(t.sub("in/c"), Array("unchanged".utf8))
        let keys = testKeys()
        let r1 = try encrypt(t.sub("in"), t.sub("v1"), keys, options(reproducible: true))
        // Different mtimes and permission bits other than x do not matter.
        chmod(t.sub("in/b"), 0o600)
        var times = [timespec(tv_sec: 12345, tv_nsec: 0), timespec(tv_sec: 12345, tv_nsec: 0)]
        utimensat(AT_FDCWD, t.sub("in/a"), &times, 0)
        let r2 = try encrypt(t.sub("in"), t.sub("v2"), keys, options(reproducible: true))
        #expect(r1.tag == r2.tag)
        #expect(treeContents(t.sub("v1")) == treeContents(t.sub("v2")))
        // Same content at another path: another ID. Changed content: another ID.
        let i1 = try ids(t.sub("v1"), keys)
        #expect(i1["b"] != i1["c"])
        writeFile(t.sub("in/a"), Array("version 2".utf8))
        let r3 = try encrypt(t.sub("in"), t.sub("v3"), keys, options(reproducible: true))
        let i3 = try ids(t.sub("v3"), keys)
        #expect(r3.tag != r1.tag)
        #expect(i3["a"] != i1["a"] && i3["b"] == i1["b"] && i3["c"] == i1["c"])
        // Another key: nothing in common.
        let r4 = try encrypt(t.sub("in"), t.sub("v4"), testKeys(99), options(reproducible: true))
        #expect(r4.tag != r3.tag)
    }

    /// Across many reproducible builds of changing content, a file ID (a content key) is only
    /// ever used for one plaintext.
    @Test func reproducibleFileIDsNeverCoverTwoPlaintexts() throws {
        let keys = testKeys()
        var seen: [[UInt8]: [UInt8]] = [:]
        var rng = SplitMix64(seed: 21)
        for build in 0..<12 {
            let t = TempDir()
            for f in ["x", "y"] {
                writeFile(t.sub("in/" + f), Array("\(f) \(Int.random(in: 0..<3, using: &rng))".utf8))
            }
            try encrypt(t.sub("in"), t.sub("v"), keys, options(reproducible: true))
            let r = try VolumeReader(path: t.sub("v"), keys: keys)
            for e in r.entries {
                guard case .file(_, _, let p?, _) = e.content else { continue }
                let content = try r.read(e.path)
                if let prior = seen[p.fileID] { #expect(prior == content, "build \(build)") }
                seen[p.fileID] = content
            }
        }
        #expect(seen.count > 2 && seen.count <= 6)
    }
}

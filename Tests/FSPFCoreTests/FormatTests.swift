import Glibc
import Testing
@testable import FSPFCore
import FSPFCrypto
import FSPFSystem
import FSPFProvisioning

@Suite struct FormatTests {
    /// fixtures/reference/volume: format 1, kept to prove old volumes keep opening.
    static let referenceTag = "08fdf179ffbce29be38f13fca44f2e15"
    /// fixtures/reference/volume-v2: the same input in format 2.
    static let referenceV2Tag = "aeeeb7d3835293ccae928fa8aefedce1"
    static let referenceV2FullTag = "aeeeb7d3835293ccae928fa8aefedce13401545411b06fbe4e0a5f73b47e3ad7"
    var reference: String { packageRoot + "/fixtures/reference" }

    func referenceKeys() throws -> VolumeKeys {
        try VolumeKeys(key: KeySource.file(reference + "/key.hex").load())
    }

    /// Format stability: the checked-in volume must open, with this exact tag, in every later version.
    /// The byte-level check metadata decoding uses agrees with `Paths.normalize` everywhere.
    @Test func normalPathCheckAgreesWithNormalize() {
        let parts = ["a", ".", "..", "", "é", "b.c", "...", ".x", "\0"]
        var cases: [String] = ["", "/", "//"]
        for x in parts { for y in parts { for sep in ["/", "//"] {
            cases += [x, x + sep + y, sep + x, x + sep, x + sep + y + "/" + "z"]
        } } }
        for c in cases {
            let normal = !c.utf8.contains(0) && (try? Paths.normalize(c)) == c
            #expect(Paths.isNormalVolumePath(Array(c.utf8)) == normal, "\(c.debugDescription)")
        }
    }

    @Test func referenceVolumeOpensWithItsTag() throws {
        let keys = try referenceKeys()
        let tag = Hex.decode(FormatTests.referenceTag)!
        // Format 1 under a tag only when accepted: a key holder can make a format-1 volume with
        // any tag, a format-2 volume's short tag included (FORMAT.md §13).
        expectError({ if case .badInput(_, let why) = $0 { return why.contains("format version 1") } else { return false } }) {
            _ = try VolumeReader(path: reference + "/volume", keys: keys, expectedTag: tag)
        }
        let r = try VolumeReader(path: reference + "/volume", keys: keys, expectedTag: tag, acceptVersion1: true)
        #expect(r.version == .v1 && Hex.encode(r.tag.short) == FormatTests.referenceTag)
        #expect(try readAll(reference + "/volume", keys, tag: tag, acceptVersion1: true) == treeContents(reference + "/input"))
        #expect(Verifier.verify(r).ok)
        #expect(try r.readLink("link") == Array("hello.txt".utf8))
        #expect(r.metadata.reproducible)
        // Without a tag nothing binds anyway: it opens.
        #expect(try VolumeReader(path: reference + "/volume", keys: keys).version == .v1)
    }

    @Test func referenceV2VolumeOpensWithItsTags() throws {
        let keys = try referenceKeys()
        let volume = reference + "/volume-v2"
        for tag in [FormatTests.referenceV2Tag, FormatTests.referenceV2FullTag] {
            let r = try VolumeReader(path: volume, keys: keys, expectedTag: Hex.decode(tag)!)
            #expect(r.version == .v2 && Hex.encode(r.tag.full) == FormatTests.referenceV2FullTag)
            #expect(Verifier.verify(r).ok)
            #expect(try readAll(volume, keys, tag: Hex.decode(tag)!) == treeContents(reference + "/input"))
        }
        // The tag is public: computed from the metadata file without the key.
        let info = try VolumeInfo(path: volume)
        #expect(Hex.encode(info.header.tag.full) == FormatTests.referenceV2FullTag && info.header.version == .v2)
        // Any other 16 or 32 bytes are refused, the v1 volume's tag included.
        for other in [FormatTests.referenceTag, String(FormatTests.referenceV2FullTag.reversed())] {
            expectError({ $0.isIntegrity }) { _ = try VolumeReader(path: volume, keys: keys, expectedTag: Hex.decode(other)!) }
        }
    }

    /// The format is pinned byte for byte: reproducible re-encryption of the reference input
    /// gives exactly the checked-in format-2 volume.
    @Test func referenceVolumeIsReproducedByteForByte() throws {
        let t = TempDir()
        let o = options(chunk: 4096, reproducible: true,
                        regions: [Region(path: "docs", kind: .authenticated, chunkSize: 4096),
                                  Region(path: "logs", kind: .notProtected, chunkSize: 4096)])
        let result = try encrypt(reference + "/input", t.sub("v"), try referenceKeys(), o)
        #expect(Hex.encode(result.tag.full) == FormatTests.referenceV2FullTag)
        #expect(Hex.encode(result.tag.short) == FormatTests.referenceV2Tag)
        #expect(treeContents(t.sub("v")) == treeContents(reference + "/volume-v2"))
    }

    /// The documented way from format 1 to 2: converting the format-1 reference volume gives
    /// exactly the format-2 one (both reproducible, same key and input), tags included.
    @Test func upgradeTurnsTheV1ReferenceIntoTheV2Reference() throws {
        let t = TempDir()
        let keys = try referenceKeys()
        let old = try VolumeReader(path: reference + "/volume", keys: keys, expectedTag: Hex.decode(FormatTests.referenceTag)!,
                                   acceptVersion1: true)
        let result = try VolumeWriter.convert(old, output: t.sub("v2"), keys: keys, options: WriterOptions())
        #expect(Hex.encode(result.tag.full) == FormatTests.referenceV2FullTag)
        #expect(treeContents(t.sub("v2")) == treeContents(reference + "/volume-v2"))
        expectError({ if case .usage = $0 { return true } else { return false } }) {
            _ = try VolumeWriter.convert(old, output: reference + "/volume/inside", keys: keys, options: WriterOptions())
        }
    }

    /// A volume that is not reproducible (random file IDs, as most are), converted: the writer read
    /// each run of chunks from the source volume in the thread that then sealed it, and the source
    /// file's key was left selected in that thread's cipher, so every converted object failed
    /// authentication. (The reference volumes above are reproducible, which hashes first.)
    @Test func upgradeOfANonReproducibleVolumeReadsBack() throws {
        let t = TempDir()
        var rng = SplitMix64(seed: 31)
        let files = ["a.bin": randomBytes(70_000, &rng), "d/b.txt": Array("small\n".utf8), "d/e/c.bin": randomBytes(5 << 20, &rng)]
        for (p, b) in files { writeFile(t.sub("in/" + p), b) }
        let keys = testKeys()
        try encrypt(t.sub("in"), t.sub("v"), keys, options(chunk: 4096))
        let result = try VolumeWriter.convert(try VolumeReader(path: t.sub("v"), keys: keys), output: t.sub("v2"), keys: keys,
                                              options: WriterOptions())
        let converted = try VolumeReader(path: t.sub("v2"), keys: keys, expectedTag: result.tag.full)
        #expect(Verifier.verify(converted).ok)
        #expect(try readAll(t.sub("v2"), keys) == files)
    }

    @Test func padme() {
        #expect(Padding.padme(0) == 4096)
        #expect(Padding.padme(4096) == 4096)
        #expect(Padding.padme(4097) == 4352)
        #expect(Padding.padme(1_000_000) == 1_015_808)
        var rng = SplitMix64(seed: 1)
        for _ in 0..<10_000 {
            let l = UInt64.random(in: 4097...(1 << 40), using: &rng)
            let p = Padding.padme(l)
            #expect(p >= l && Double(p - l) / Double(l) < 0.12)
            #expect(Padding.padme(p) == p, "padded sizes are fixed points")
        }
    }

    @Test func treeGeometry() {
        // Version 1: 16-byte leaves, 256 to a block.
        let one = TreeGeometry(chunkCount: 1, version: .v1)
        #expect(one.levels == 1 && one.byteCount == 16)
        #expect(TreeGeometry(chunkCount: 256, version: .v1).levels == 1)
        let two = TreeGeometry(chunkCount: 257, version: .v1)
        #expect(two.levels == 2 && two.entries == [257, 2] && two.byteCount == 257 * 16 + 64)
        let three = TreeGeometry(chunkCount: 256 * 128 + 1, version: .v1)
        #expect(three.levels == 3 && three.entries == [32769, 129, 2])
        #expect(three.blockRange(level: 1, index: 1) == (three.levelOffsets[1] + 128 * 32, 32))
        // Version 2: 48-byte leaves (GCM tag, SHA-256), 64 to a 3 KiB block.
        #expect(TreeGeometry(chunkCount: 1, version: .v2).byteCount == 48)
        #expect(TreeGeometry(chunkCount: 64, version: .v2).levels == 1)
        let v2 = TreeGeometry(chunkCount: 65, version: .v2)
        #expect(v2.levels == 2 && v2.entries == [65, 2] && v2.byteCount == 65 * 48 + 64)
        #expect(v2.blockRange(level: 0, index: 1) == (64 * 48, 48))
        let deep = TreeGeometry(chunkCount: 64 * 128 + 1, version: .v2)
        #expect(deep.levels == 3 && deep.entries == [8193, 129, 2] && deep.levelOffsets == [0, 8193 * 48, 8193 * 48 + 129 * 32])
    }

    /// The chunk arithmetic of a read against a byte-by-byte model, over every offset and
    /// capacity around chunk boundaries, padded and unpadded ends, and buffers that just fit.
    @Test func chunkRangeMatchesAByteModel() {
        for cs in [UInt32(4), 8] {
            for size in UInt64(0)...UInt64(5 * cs) {
                for stored in Set([size, max(size, UInt64(cs)), (size + UInt64(cs) - 1) / UInt64(cs) * UInt64(cs), size + 3]) where stored >= size {
                    for offset in UInt64(0)...(size + 2) {
                        for capacity in 0...Int(4 * cs + 2) {
                            let r = ChunkRange(offset: offset, capacity: capacity, size: size, storedSize: stored, chunkSize: cs)
                            let want = offset < size ? Int(min(UInt64(capacity), size - offset)) : 0
                            #expect(r.count == want)
                            // Which buffer byte each piece fills, and from which file byte.
                            var filled = [UInt64?](repeating: nil, count: capacity)
                            func put(_ bufferAt: Int, _ fileAt: UInt64, _ n: Int) {
                                for k in 0..<n {
                                    #expect(bufferAt + k < capacity && filled[bufferAt + k] == nil)
                                    if bufferAt + k < capacity { filled[bufferAt + k] = fileAt + UInt64(k) }
                                }
                            }
                            let stride = UInt64(cs)
                            for p in [r.head, r.tail].compactMap({ $0 }) {
                                #expect(p.storedLength == Int(min(stride, stored - p.chunk * stride)) && p.from < p.to && p.to <= p.storedLength)
                                put(p.bufferOffset, p.chunk * stride + UInt64(p.from), p.to - p.from)
                            }
                            if let h = r.head, let t = r.tail { #expect(h.chunk < t.chunk) }
                            if let w = r.whole {
                                // Whole chunks: their stored bytes (padding too) fit in the buffer.
                                #expect(w.first < w.end && w.bufferOffset + w.storedLength <= capacity)
                                #expect(UInt64(w.storedLength) == min(w.end * stride, stored) - w.first * stride)
                                put(w.bufferOffset, w.first * stride, w.resultLength)
                                if let h = r.head { #expect(h.chunk < w.first) }
                                if let t = r.tail { #expect(t.chunk >= w.end) }
                            }
                            #expect(filled.prefix(want).enumerated().allSatisfy { $0.element == offset + UInt64($0.offset) },
                                    "cs \(cs) size \(size) stored \(stored) offset \(offset) capacity \(capacity)")
                            #expect(filled.dropFirst(want).allSatisfy { $0 == nil })
                        }
                    }
                }
            }
        }
    }

    static func sampleMetadata(_ version: FormatVersion) -> VolumeMetadata {
        let regions = [Region(path: "", kind: .encrypted, chunkSize: 65536), Region(path: "p", kind: .authenticated, chunkSize: 4096)]
        func file(_ id: UInt8, size: UInt64, holes: [HoleSpan] = []) -> EntryContent {
            .file(size: size, region: .encrypted, protection: ProtectedFile(version: version, kind: .encrypted, chunkSize: 65536,
                  storedSize: Padding.padme(size), fileID: Array(repeating: id, count: 32), root: Array(repeating: id + 1, count: 32),
                  object: ".fspf-objects/0\(id)/x", holes: holes), plain: nil)
        }
        var entries = [
            Entry(path: "a", mode: 0o755, mtimeSeconds: 1, mtimeNanoseconds: 2, content: .directory),
            Entry(path: "a/f", mode: 0o644, mtimeSeconds: 3, mtimeNanoseconds: 4, content: file(1, size: 5)),
            Entry(path: "l", mode: 0o777, mtimeSeconds: 0, mtimeNanoseconds: 0, content: .symlink(target: Array("a/f".utf8))),
        ]
        guard version == .v2 else { return VolumeMetadata(version: .v1, reproducible: false, regions: regions, entries: entries) }
        let caps = [ExtendedAttribute(name: Array("security.capability".utf8), value: [1, 0, 0, 2, 0, 32, 0, 0]),
                    ExtendedAttribute(name: Array("user.origin".utf8), value: Array("nyc".utf8))]
        entries[1].uid = 185
        entries[1].gid = 185
        entries[1].xattrs = caps
        entries[1].mode = 0o600
        var link = entries[1]  // a hard link carries its first path's content and attributes
        link.path = "a/g"
        link.linkOf = 1
        entries.insert(link, at: 2)
        entries.insert(Entry(path: "a/sparse", mode: 0o640, mtimeSeconds: -5, mtimeNanoseconds: 999_999_999,
                             content: file(3, size: 10 << 20, holes: [HoleSpan(first: 0, count: 2), HoleSpan(first: 5, count: 150)]),
                             uid: 1000, gid: 100), at: 3)
        let root = Entry(path: "", mode: 0o700, mtimeSeconds: 9, mtimeNanoseconds: 10, content: .directory, uid: 185, gid: 0)
        return VolumeMetadata(version: .v2, reproducible: false, regions: regions, root: root, entries: entries)
    }

    @Test(arguments: FormatVersion.allCases)
    func metadataRoundTripAndStrictDecoding(version: FormatVersion) throws {
        let m = FormatTests.sampleMetadata(version)
        let bytes = m.encoded()
        #expect(UInt64(bytes.count) == Padding.padme(UInt64(bytes.count)))
        #expect(try VolumeMetadata.decode(bytes, context: "t") == m)
        func refused(_ broken: VolumeMetadata, sourceLocation: SourceLocation = #_sourceLocation) {
            expectError({ if case .badInput = $0 { return true } else { return false } }, sourceLocation: sourceLocation) {
                _ = try VolumeMetadata.decode(broken.encoded(), context: "t")
            }
        }
        // Unsorted entries, missing parents, bad padding and every truncation are refused, never crash.
        var unsorted = m; unsorted.entries.swapAt(0, 2)
        refused(unsorted)
        var orphan = m; orphan.entries.removeFirst()
        refused(orphan)
        var padded = bytes; padded[padded.count - 1] = 1
        expectError({ if case .badInput = $0 { return true } else { return false } }) { _ = try VolumeMetadata.decode(padded, context: "t") }
        for cut in stride(from: 0, to: bytes.count, by: 7) {
            #expect(throws: FSPFError.self) { _ = try VolumeMetadata.decode(Array(bytes[0..<cut]), context: "t") }
        }
        var rng = SplitMix64(seed: 3)
        for _ in 0..<2000 {
            var b = bytes
            b[Int.random(in: 0..<min(400, b.count), using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            _ = try? VolumeMetadata.decode(b, context: "t")
        }
        guard version == .v2 else { return }
        // Version 2's own rules: links only to an earlier file of the same region, attributes
        // sorted and unique, holes sorted, apart, and inside the content (never the padding).
        var forward = m; forward.entries[2].linkOf = 3
        refused(forward)
        var toDirectory = m; toDirectory.entries[2].linkOf = 0
        refused(toDirectory)
        var unsortedAttributes = m; unsortedAttributes.root!.xattrs = FormatTests.sampleMetadata(.v2).entries[1].xattrs.reversed()
        refused(unsortedAttributes)
        for holes in [[HoleSpan(first: 0, count: 2), HoleSpan(first: 2, count: 1)], [HoleSpan(first: 3, count: 1), HoleSpan(first: 0, count: 1)],
                      [HoleSpan(first: 150, count: 11)], [HoleSpan(first: 0, count: 0)]] {
            var m2 = m
            guard case .file(let size, let region, var p?, let plain) = m2.entries[3].content else { Issue.record("sample"); return }
            p.holes = holes
            m2.entries[3].content = .file(size: size, region: region, protection: p, plain: plain)
            refused(m2)
        }
        // Ephemeral regions (bit 7 of the region byte) record nothing: refused as the root,
        // around another region, or with an entry at or below their path.
        var ephemeral = m; ephemeral.regions.append(Region(path: "tmp", kind: .encrypted, chunkSize: 4096, ephemeral: true))
        #expect(try VolumeMetadata.decode(ephemeral.encoded(), context: "t") == ephemeral)
        #expect(ephemeral.encoded() != m.encoded())
        var rootEphemeral = m; rootEphemeral.regions[0].ephemeral = true
        refused(rootEphemeral)
        var around = m
        around.regions += [Region(path: "q", kind: .encrypted, chunkSize: 4096, ephemeral: true), Region(path: "q/r", kind: .encrypted, chunkSize: 4096)]
        refused(around)
        var holding = m; holding.regions.append(Region(path: "a", kind: .encrypted, chunkSize: 4096, ephemeral: true))
        refused(holding)
    }

    /// Step builds keep an authenticated file's tag tree in the metadata (FORMAT.md §2, §4):
    /// nothing is written beside the plaintext, every read is still verified against the tree,
    /// and decoding refuses a tree of the wrong length or an inline tree for an encrypted file.
    @Test func inlineTreesOfAuthenticatedFiles() throws {
        let t = TempDir()
        var rng = SplitMix64(seed: 11)
        let big = randomBytes(100_000, &rng)
        writeFile(t.sub("sys/lib.so"), big)
        writeFile(t.sub("sys/empty"), [])
        let keys = testKeys()
        var draft = Draft(keys: keys)
        try draft.addRegion(path: "/", kind: .notProtected, kernel: "/", chunkSize: ChunkSize.default)
        try draft.addRegion(path: "/sys", kind: .authenticated, kernel: t.sub("sys"), chunkSize: 4096)
        _ = try draft.addFiles(embed: "/sys", source: t.sub("sys"), output: nil, draftPath: t.sub("v.pb"), options: options())
        let result = try draft.seal(to: t.sub("v.pb"))
        #expect(try FileSystem.list(t.sub("sys")).map { String(decoding: $0, as: UTF8.self) }.sorted() == ["empty", "lib.so"])
        let reader = try VolumeReader(path: t.sub("v.pb"), keys: keys, expectedTag: result.tag.full)
        #expect(try reader.read("sys/lib.so") == big && reader.read("sys/empty").isEmpty)
        #expect(Verifier.verify(reader).ok)
        for e in reader.entries {
            guard case .file(_, _, let p?, _) = e.content else { continue }
            #expect(p.object.isEmpty && p.inlineTree?.count == Int(p.geometry.byteCount), "\(e.path)")
        }
        // The plaintext is checked against the tree as before.
        var changed = big; changed[50_000] ^= 1
        writeFile(t.sub("sys/lib.so"), changed)
        expectDetected(t.sub("v.pb"), keys, original: ["sys/lib.so": big, "sys/empty": []], tag: result.tag.full)

        let m = reader.metadata
        let i = m.entries.firstIndex { $0.path == "sys/lib.so" }!
        func refused(_ change: (inout ProtectedFile) -> Void, kind: RegionKind = .authenticated) {
            var broken = m
            guard case .file(let size, _, var p?, let plain) = broken.entries[i].content else { Issue.record("sample"); return }
            change(&p)
            p.kind = kind == .encrypted ? .encrypted : .authenticated
            broken.entries[i].content = .file(size: size, region: kind, protection: p, plain: kind == .encrypted ? nil : plain)
            expectError({ if case .badInput = $0 { return true } else { return false } }) {
                _ = try VolumeMetadata.decode(broken.encoded(), context: "t")
            }
        }
        refused { $0.inlineTree!.removeLast() }
        refused { $0.inlineTree!.append(0) }
        refused({ $0.storedSize = Padding.padme($0.storedSize) }, kind: .encrypted)
    }

    /// Known answer: the version-2 encoding of the sample metadata, every field present, is
    /// pinned by its hash (FORMAT.md §4 describes each byte).
    @Test func metadataEncodingKnownAnswer() {
        let bytes = FormatTests.sampleMetadata(.v2).encoded()
        #expect(bytes.count == 4096)
        #expect(Hex.encode(SHA256.hash(bytes)) == "b39d8f0e513b91ab595b083e686ea72178afbe167d577c884e66f261c11778b0")
    }

    /// Every input that ever crashed a fuzz target (fixtures/fuzz/regressions/<target>/) is
    /// rejected cleanly: huge sizes overflowed the padding (metadata), a huge announced length
    /// overflowed an error message (header).
    @Test(arguments: ["metadata", "header"])
    func fuzzRegressionsAreRejectedCleanly(target: String) throws {
        let dir = packageRoot + "/fixtures/fuzz/regressions/" + target
        let inputs = try FileSystem.list(dir)
        #expect(!inputs.isEmpty)
        for name in inputs {
            let bytes = try FileSystem.readAll(dir + "/" + String(decoding: name, as: UTF8.self))
            #expect(throws: FSPFError.self) {
                if target == "metadata" { _ = try VolumeMetadata.decode(bytes, context: "regression") }
                else { _ = try SealedMetadata.parseHeader(bytes, path: "regression") }
            }
        }
    }

    @Test func regionsUseLongestComponentPrefix() {
        let regions = [Region(path: "", kind: .encrypted, chunkSize: 4096),
                       Region(path: "a", kind: .authenticated, chunkSize: 4096),
                       Region(path: "a/b", kind: .notProtected, chunkSize: 4096)]
        #expect(Region.of("x", in: regions).kind == .encrypted)
        #expect(Region.of("a", in: regions).kind == .authenticated)
        #expect(Region.of("a/bc/x", in: regions).kind == .authenticated)
        #expect(Region.of("a/b/x", in: regions).kind == .notProtected)
        #expect(Region.of("ab", in: regions).kind == .encrypted)
    }

    @Test func wrongKeyAndTagAreDistinct() throws {
        let keys = try referenceKeys()
        for volume in ["/volume", "/volume-v2"] {
            expectError({ $0.isWrongKey }) { _ = try VolumeReader(path: reference + volume, keys: testKeys(), acceptVersion1: true) }
            for size in [16, 32] where volume != "/volume" || size == 16 {
                expectError({ $0.isIntegrity }) {
                    _ = try VolumeReader(path: reference + volume, keys: keys, expectedTag: [UInt8](repeating: 0, count: size), acceptVersion1: true)
                }
            }
        }
        // A full (32-byte) tag never names a format-1 volume, whose tag has 16 bytes.
        expectError({ $0.isIntegrity }) {
            _ = try VolumeReader(path: reference + "/volume", keys: keys,
                                 expectedTag: Hex.decode(FormatTests.referenceTag + FormatTests.referenceTag)!, acceptVersion1: true)
        }
        expectError({ if case .noInput = $0 { return true } else { return false } }) {
            _ = try VolumeReader(path: reference + "/nonexistent", keys: keys)
        }
        expectError({ if case .badInput = $0 { return true } else { return false } }) {
            _ = try VolumeReader(path: reference + "/key.hex", keys: keys)
        }
    }
}

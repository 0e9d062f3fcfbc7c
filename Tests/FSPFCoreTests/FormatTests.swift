import Glibc
import Testing
@testable import FSPFCore
import FSPFCrypto
import FSPFSystem
import FSPFProvisioning

@Suite struct FormatTests {
    static let referenceTag = "08fdf179ffbce29be38f13fca44f2e15"
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
        let files = try readAll(reference + "/volume", keys, tag: tag)
        let input = treeContents(reference + "/input")
        #expect(files == input)
        let r = try VolumeReader(path: reference + "/volume", keys: keys, expectedTag: tag)
        #expect(Verifier.verify(r).ok)
        #expect(try r.readLink("link") == Array("hello.txt".utf8))
        #expect(r.metadata.reproducible)
    }

    /// The format is pinned byte for byte: reproducible re-encryption of the reference input
    /// gives exactly the checked-in volume.
    @Test func referenceVolumeIsReproducedByteForByte() throws {
        let t = TempDir()
        let o = options(chunk: 4096, reproducible: true,
                        regions: [Region(path: "docs", kind: .authenticated, chunkSize: 4096),
                                  Region(path: "logs", kind: .notProtected, chunkSize: 4096)])
        let result = try encrypt(reference + "/input", t.sub("v"), try referenceKeys(), o)
        #expect(Hex.encode(result.tag) == FormatTests.referenceTag)
        #expect(treeContents(t.sub("v")) == treeContents(reference + "/volume"))
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
        let one = TreeGeometry(chunkCount: 1)
        #expect(one.levels == 1 && one.byteCount == 16)
        let full = TreeGeometry(chunkCount: 256)
        #expect(full.levels == 1)
        let two = TreeGeometry(chunkCount: 257)
        #expect(two.levels == 2 && two.entries == [257, 2] && two.byteCount == 257 * 16 + 64)
        let three = TreeGeometry(chunkCount: 256 * 128 + 1)
        #expect(three.levels == 3 && three.entries == [32769, 129, 2])
        #expect(three.blockRange(level: 1, index: 1) == (three.levelOffsets[1] + 128 * 32, 32))
    }

    @Test func metadataRoundTripAndStrictDecoding() throws {
        let m = VolumeMetadata(reproducible: false, regions: [Region(path: "", kind: .encrypted, chunkSize: 65536)], entries: [
            Entry(path: "a", mode: 0o755, mtimeSeconds: 1, mtimeNanoseconds: 2, content: .directory),
            Entry(path: "a/f", mode: 0o644, mtimeSeconds: 3, mtimeNanoseconds: 4, content: .file(size: 5, region: .encrypted,
                protection: ProtectedFile(kind: .encrypted, chunkSize: 65536, storedSize: 4096, fileID: Array(repeating: 1, count: 32),
                                          root: Array(repeating: 2, count: 32), object: ".fspf-objects/01/x"), plain: nil)),
            Entry(path: "l", mode: 0o777, mtimeSeconds: 0, mtimeNanoseconds: 0, content: .symlink(target: Array("a/f".utf8))),
        ])
        let bytes = m.encoded()
        #expect(UInt64(bytes.count) == Padding.padme(UInt64(bytes.count)))
        #expect(try VolumeMetadata.decode(bytes, context: "t") == m)
        // Unsorted entries, missing parents, bad padding and every truncation are refused, never crash.
        var unsorted = m; unsorted.entries.swapAt(0, 2)
        expectError({ if case .badInput = $0 { return true } else { return false } }) { _ = try VolumeMetadata.decode(unsorted.encoded(), context: "t") }
        var orphan = m; orphan.entries.removeFirst()
        expectError({ if case .badInput = $0 { return true } else { return false } }) { _ = try VolumeMetadata.decode(orphan.encoded(), context: "t") }
        var padded = bytes; padded[padded.count - 1] = 1
        expectError({ if case .badInput = $0 { return true } else { return false } }) { _ = try VolumeMetadata.decode(padded, context: "t") }
        for cut in stride(from: 0, to: bytes.count, by: 7) {
            #expect(throws: FSPFError.self) { _ = try VolumeMetadata.decode(Array(bytes[0..<cut]), context: "t") }
        }
        var rng = SplitMix64(seed: 3)
        for _ in 0..<2000 {
            var b = bytes
            b[Int.random(in: 0..<200, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            _ = try? VolumeMetadata.decode(b, context: "t")
        }
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
        expectError({ $0.isWrongKey }) { _ = try VolumeReader(path: reference + "/volume", keys: testKeys()) }
        expectError({ $0.isIntegrity }) {
            _ = try VolumeReader(path: reference + "/volume", keys: keys, expectedTag: [UInt8](repeating: 0, count: 16))
        }
        expectError({ if case .noInput = $0 { return true } else { return false } }) {
            _ = try VolumeReader(path: reference + "/nonexistent", keys: keys)
        }
        expectError({ if case .badInput = $0 { return true } else { return false } }) {
            _ = try VolumeReader(path: reference + "/key.hex", keys: keys)
        }
    }
}

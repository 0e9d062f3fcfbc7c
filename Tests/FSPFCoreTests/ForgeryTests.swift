import Glibc
import Testing
@_spi(Fuzzing) @testable import FSPFCore
import FSPFCrypto
import FSPFCommandLine
import FSPFSystem
import FSPFTestSupport

/// The attack format 2 exists for (docs/FORMAT.md §13), built as a key holder would: with the
/// key and nonce fixed, a GCM tag is an affine function over GF(2) of the plaintext's bits, so
/// free bits (low bits of modification times, padding past a file's end) can be solved for by
/// Gaussian elimination to give other content the pinned tag. Each attack succeeds against the
/// format-1 reference volume (so the test can fail) and is refused by format 2.
@Suite struct ForgeryTests {
    let reference = packageRoot + "/fixtures/reference"
    static let v1Tag = Hex.decode(FormatTests.referenceTag)!
    static let v2Tag = Hex.decode(FormatTests.referenceV2Tag)!
    static let v2FullTag = Hex.decode(FormatTests.referenceV2FullTag)!
    static let evil = Array("import os #\n".utf8)

    func keys() throws -> VolumeKeys {
        var raw = Hex.decode(String(decoding: readFile(reference + "/key.hex").prefix(64), as: UTF8.self))!
        return try VolumeKeys(key: SecureBytes(consuming: &raw))
    }

    // MARK: The sealed metadata

    /// A different tree (hello.txt now holds the attacker's code, in a new object) whose sealed
    /// metadata carries the honest volume's GCM tag: only nanoseconds of modification times differ
    /// from what the attacker wants, and the strict decoder accepts them.
    func forgeMetadata(_ volume: String, version: FormatVersion) throws -> (file: [UInt8], object: [UInt8], location: String) {
        let keys = try keys()
        let honest = try VolumeReader(path: volume, keys: keys)
        let honestFile = readFile(volume + "/volume.fspf")
        let nonce = Array(honestFile[16..<28])
        let gcmTag = Array(honestFile.suffix(16))
        var m = honest.metadata
        let i = try #require(try honest.entryIndex("hello.txt"))
        // The honest hello.txt's object goes: nothing stray is left for verify to see.
        if case .file(_, _, let old?, _) = m.entries[i].content { unlink(honest.location(old.object)) }
        let id = [UInt8](repeating: 0xee, count: 32)
        let (object, root) = encryptedObject(keys, version: version, fileID: id, content: ForgeryTests.evil)
        let location = ".fspf-objects/ee/" + String(repeating: "e", count: 30)
        m.entries[i].content = .file(size: UInt64(ForgeryTests.evil.count), region: .encrypted,
                                     protection: ProtectedFile(version: version, kind: .encrypted, chunkSize: 4096,
                                                               storedSize: Padding.padme(UInt64(ForgeryTests.evil.count)),
                                                               fileID: id, root: root, object: location), plain: nil)
        return (try sealWithGCMTag(m, gcmTag, keys: keys, nonce: nonce), object, location)
    }

    /// `m` sealed under `nonce` with free bits (bits 0-28 of every entry's nanoseconds: any value
    /// below 2^29 decodes) solved for so that its GCM tag is `gcmTag`.
    func sealWithGCMTag(_ m: VolumeMetadata, _ gcmTag: [UInt8], keys: VolumeKeys, nonce: [UInt8]) throws -> [UInt8] {
        let free = m.entries.indices.flatMap { e in (0..<29).map { (e, $0) } }
        func seal(_ bits: Set<Int>) -> [UInt8] {
            var x = m
            for b in bits { x.entries[free[b].0].mtimeNanoseconds ^= 1 << UInt32(free[b].1) }
            var plaintext = x.encoded()
            return SealedMetadata.seal(plaintext: &plaintext, version: x.version, reproducible: x.reproducible, nonce: nonce, keys: keys)
        }
        let base = seal([])
        let columns = free.indices.map { GF2.Vector(xor(Array(seal([$0]).suffix(16)), Array(base.suffix(16)))) }
        let choice = try #require(GF2.solve(columns, GF2.Vector(xor(gcmTag, Array(base.suffix(16))))), "the tag map has full rank")
        let forged = seal(Set(choice))
        #expect(Array(forged.suffix(16)) == gcmTag, "the forged metadata carries the chosen GCM tag")
        return forged
    }

    /// A copy of a reference volume with the forged metadata and the attacker's object in place.
    func plantForgedMetadata(_ t: TempDir, _ volume: String, version: FormatVersion) throws {
        try copyTree(reference + "/" + volume, t.sub("v"))
        let (file, object, location) = try forgeMetadata(t.sub("v"), version: version)
        writeFile(t.sub("v/volume.fspf"), file)
        writeFile(t.sub("v/" + location), object)
    }

    @Test func metadataForgeryOpensAFormat1VolumeUnderItsPinnedTag() throws {
        let t = TempDir()
        try plantForgedMetadata(t, "volume", version: .v1)
        // The attack works against format 1: the pinned tag opens the attacker's tree, every
        // check passes, and the attacker's code is served.
        let r = try VolumeReader(path: t.sub("v"), keys: try keys(), expectedTag: ForgeryTests.v1Tag, acceptVersion1: true)
        #expect(try r.read("hello.txt") == ForgeryTests.evil)
        #expect(Verifier.verify(r).ok)
        // ...which is why a format-1 volume is not accepted under a tag by default.
        #expect(throws: FSPFError.self) { _ = try VolumeReader(path: t.sub("v"), keys: try keys(), expectedTag: ForgeryTests.v1Tag) }
    }

    @Test func metadataForgeryIsRefusedByFormat2() throws {
        let t = TempDir()
        try plantForgedMetadata(t, "volume-v2", version: .v2)
        // The GCM tag was matched as before, but the pinned tag is a SHA-256 of the file.
        for tag in [ForgeryTests.v2Tag, ForgeryTests.v2FullTag] {
            expectError({ $0.isIntegrity }) { _ = try VolumeReader(path: t.sub("v"), keys: try keys(), expectedTag: tag) }
        }
        // Downgrade: a key holder can give a format-1 volume the format-2 short tag as its GCM
        // tag; it is refused unless format 1 is accepted explicitly.
        let downgrade = try forgeV1WithTag(ForgeryTests.v2Tag, t)
        expectError({ if case .badInput(_, let why) = $0 { return why.contains("format version 1") } else { return false } }) {
            _ = try VolumeReader(path: downgrade, keys: try keys(), expectedTag: ForgeryTests.v2Tag)
        }
        expectError({ $0.isIntegrity }) { _ = try VolumeReader(path: downgrade, keys: try keys(), expectedTag: ForgeryTests.v2FullTag, acceptVersion1: true) }
    }

    /// The same downgrade through `fspf upgrade`, which opened format 1 whatever `--accept-v1`
    /// said: the key holder's format-1 tree, put in the honest volume's place under its short
    /// tag, was converted into a new volume whose tag the command told the user to pin.
    @Test func upgradeRefusesAFormat1VolumeUnderAFormat2TagWithoutAcceptV1() throws {
        let t = TempDir()
        let downgrade = try forgeV1WithTag(ForgeryTests.v2Tag, t)
        let command = "fspf upgrade '\(downgrade)' --out new --key-file '\(reference)/key.hex' --tag \(Hex.encode(ForgeryTests.v2Tag))"
        let refused = Tool.sh(command, cwd: t.path)
        #expect(refused.status == ExitStatus.badInput && refused.err.contains("format version 1") && refused.out.isEmpty,
                "\(refused.status) \(refused.err)")
        #expect(!FileSystem.exists(t.sub("new")))
        // Accepted explicitly, it converts, with the warning.
        let accepted = Tool.sh(command + " --accept-v1", cwd: t.path)
        #expect(accepted.status == 0 && accepted.err.contains("warning:") && accepted.err.contains("format version 1"),
                "\(accepted.status) \(accepted.err)")
    }

    /// The format-1 reference volume re-sealed so that its GCM tag, its format-1 tag, is `tag`.
    func forgeV1WithTag(_ tag: [UInt8], _ t: TempDir) throws -> String {
        let keys = try keys()
        try copyTree(reference + "/volume", t.sub("down"))
        let honest = try VolumeReader(path: t.sub("down"), keys: keys)
        let nonce = Array(readFile(t.sub("down/volume.fspf"))[16..<28])
        writeFile(t.sub("down/volume.fspf"), try sealWithGCMTag(honest.metadata, tag, keys: keys, nonce: nonce))
        return t.sub("down")
    }

    // MARK: A chunk

    /// hello.txt's one chunk replaced by the attacker's code, with padding bits past the file's
    /// end chosen so that the chunk's GCM tag, the format-1 leaf, is unchanged.
    func forgeChunk(_ volume: String, version: FormatVersion) throws -> (object: String, bytes: [UInt8]) {
        let keys = try keys()
        let honest = try VolumeReader(path: volume, keys: keys, acceptVersion1: version == .v1)
        let i = try #require(try honest.entryIndex("hello.txt"))
        guard case .file(_, _, let p?, _) = honest.entries[i].content else { throw FSPFError.usage("not protected") }
        let path = honest.location(p.object)
        var object = readFile(path)
        let cs = Int(p.storedSize)
        let treeAt = Int(p.treeOffset)
        let tag = Array(object[treeAt..<(treeAt + 16)])
        var plain = [UInt8](repeating: 0, count: cs)
        plain.replaceSubrange(0..<ForgeryTests.evil.count, with: ForgeryTests.evil)
        let cipher = ChunkCipher.forCurrentThread()
        cipher.select(keys, fileID: p.fileID)
        func seal(_ bits: Set<Int>) -> (ciphertext: [UInt8], tag: [UInt8]) {
            var data = plain
            for b in bits { data[64 + b / 8] ^= 1 << UInt8(b % 8) }  // padding bytes 64...
            var t = [UInt8](repeating: 0, count: 16)
            data.withUnsafeMutableBytes { d in t.withUnsafeMutableBytes { cipher.seal(index: 0, final: true, data: d, tag: $0) } }
            return (data, t)
        }
        let base = seal([])
        let columns = (0..<200).map { GF2.Vector(xor(seal([$0]).tag, base.tag)) }
        let choice = try #require(GF2.solve(columns, GF2.Vector(xor(tag, base.tag))))
        let forged = seal(Set(choice))
        #expect(forged.tag == tag, "the attacker's chunk authenticates under the honest GCM tag")
        object.replaceSubrange(ObjectHeader.size..<(ObjectHeader.size + cs), with: forged.ciphertext)
        return (path, object)
    }

    @Test func chunkForgeryIsServedByFormat1() throws {
        let t = TempDir()
        try copyTree(reference + "/volume", t.sub("v"))
        let (path, bytes) = try forgeChunk(t.sub("v"), version: .v1)
        writeFile(path, bytes)
        let r = try VolumeReader(path: t.sub("v"), keys: try keys(), expectedTag: ForgeryTests.v1Tag, acceptVersion1: true)
        #expect(try r.read("hello.txt") == ForgeryTests.evil, "format 1 serves the attacker's chunk under the pinned tag")
        #expect(Verifier.verify(r).ok)
    }

    @Test func chunkForgeryIsRefusedByFormat2() throws {
        let t = TempDir()
        try copyTree(reference + "/volume-v2", t.sub("v"))
        let (path, bytes) = try forgeChunk(t.sub("v"), version: .v2)
        writeFile(path, bytes)
        let r = try VolumeReader(path: t.sub("v"), keys: try keys(), expectedTag: ForgeryTests.v2FullTag)
        expectError({ if case .integrity(_, let why) = $0 { return why.contains("does not match the hash") } else { return false } }) {
            _ = try r.read("hello.txt")
        }
        #expect(!Verifier.verify(r).ok)
    }

    // MARK: Helpers

    /// A one-chunk encrypted object of either format, and its root.
    func encryptedObject(_ keys: VolumeKeys, version: FormatVersion, fileID: [UInt8], content: [UInt8]) -> ([UInt8], [UInt8]) {
        let stored = Int(Padding.padme(UInt64(content.count)))
        precondition(stored == 4096)
        var data = content + [UInt8](repeating: 0, count: stored - content.count)
        var tag = [UInt8](repeating: 0, count: 16)
        let cipher = ChunkCipher.forCurrentThread()
        cipher.select(keys, fileID: fileID)
        data.withUnsafeMutableBytes { d in tag.withUnsafeMutableBytes { cipher.seal(index: 0, final: true, data: d, tag: $0) } }
        let leaf = version == .v1 ? tag : tag + SHA256.hash(data)
        let g = TreeGeometry(chunkCount: 1, version: version)
        let top = leaf.withUnsafeBytes { g.nodeHash(level: 0, index: 0, block: $0) }
        let root = g.root(fileID: fileID, kind: .encrypted, size: UInt64(content.count), storedSize: UInt64(stored), chunkSize: 4096, topHash: top)
        return (ObjectHeader.bytes(version: version, kind: .encrypted, fileID: fileID) + data + leaf, root)
    }

    func xor(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] { zip(a, b).map { $0 ^ $1 } }

    func copyTree(_ from: String, _ to: String) throws {
        #expect(system("cp -a '\(from)' '\(to)'") == 0)
    }
}

/// Linear algebra over GF(2) on 128-bit vectors: which columns sum to a target.
enum GF2 {
    struct Vector: Equatable {
        var hi: UInt64, lo: UInt64
        init(_ bytes: [UInt8]) {
            hi = bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
            lo = bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
        }
        init(hi: UInt64, lo: UInt64) { self.hi = hi; self.lo = lo }
        static func ^ (a: Vector, b: Vector) -> Vector { Vector(hi: a.hi ^ b.hi, lo: a.lo ^ b.lo) }
        func bit(_ i: Int) -> Bool { i < 64 ? (hi >> UInt64(63 - i)) & 1 == 1 : (lo >> UInt64(127 - i)) & 1 == 1 }
        var isZero: Bool { hi == 0 && lo == 0 }
    }

    /// Indices of columns whose sum is `target`, or nil if none exists (Gaussian elimination,
    /// tracking which original columns make up each reduced one).
    static func solve(_ columns: [Vector], _ target: Vector) -> [Int]? {
        var basis: [(vector: Vector, pivot: Int, combination: Set<Int>)] = []
        for (j, c) in columns.enumerated() {
            var v = c
            var combination: Set<Int> = [j]
            for b in basis where v.bit(b.pivot) {
                v = v ^ b.vector
                combination.formSymmetricDifference(b.combination)
            }
            guard let pivot = (0..<128).first(where: { v.bit($0) }) else { continue }
            // Keep the basis reduced: clear this pivot from the earlier vectors.
            for k in basis.indices where basis[k].vector.bit(pivot) {
                basis[k].vector = basis[k].vector ^ v
                basis[k].combination.formSymmetricDifference(combination)
            }
            basis.append((v, pivot, combination))
        }
        var v = target
        var combination: Set<Int> = []
        for b in basis where v.bit(b.pivot) {
            v = v ^ b.vector
            combination.formSymmetricDifference(b.combination)
        }
        return v.isZero ? combination.sorted() : nil
    }
}

import Testing
@testable import FSPFCore
import FSPFCrypto
import FSPFSystem

/// The chunk codec against leaves computed independently (Python's `cryptography`: HKDF-SHA256
/// for the file key, AES-256-GCM, SHA-256, with the nonce and AAD of docs/FORMAT.md §5), and
/// every way a stored chunk can fail its leaf.
@Suite struct ChunkCodecTests {
    static let fileID = Array(UInt8(32)..<UInt8(64))
    static let plaintext = (0..<100).map { UInt8(truncatingIfNeeded: $0 * 7) }

    static func cipher() throws -> ChunkCipher {
        var raw = Array(UInt8(0)..<UInt8(32))
        let keys = try VolumeKeys(key: SecureBytes(consuming: &raw))
        let cipher = ChunkCipher()
        cipher.select(keys, fileID: fileID)
        return cipher
    }

    static func sealed(_ kind: ChunkKind, _ position: ChunkCodec.Position) throws -> (chunk: [UInt8], leaf: [UInt8]) {
        let cipher = try Self.cipher()
        var chunk = plaintext
        var leaf = [UInt8](repeating: 0, count: Leaf.size)
        chunk.withUnsafeMutableBytes { c in leaf.withUnsafeMutableBytes { ChunkCodec.seal(c, kind: kind, at: position, leaf: $0, cipher) } }
        return (chunk, leaf)
    }

    static func check(_ chunk: [UInt8], read: Int? = nil, _ leaf: [UInt8], _ kind: ChunkKind, _ position: ChunkCodec.Position,
                      version: FormatVersion = .v2) throws -> (ChunkCodec.Check, [UInt8]) {
        let cipher = try Self.cipher()
        var work = chunk
        let result = work.withUnsafeMutableBytes { w in
            leaf.withUnsafeBytes { ChunkCodec.check(w, read: read ?? chunk.count, version: version, kind: kind, at: position, leaf: $0, cipher) }
        }
        return (result, work)
    }

    @Test func encryptedChunkKnownAnswer() throws {
        let position = ChunkCodec.Position(index: 5, generation: 2, final: true)
        let (chunk, leaf) = try Self.sealed(.encrypted, position)
        #expect(Hex.encode(leaf) == "2187af5fe67fe7ae8f79016e15d0031e0c984b77bae6c190f4c8337381ff06a28405c3a6403b8d91d027aa689bb7d399")
        #expect(chunk != Self.plaintext)
        let (result, opened) = try Self.check(chunk, leaf, .encrypted, position)
        #expect(result == .authentic)
        #expect(opened == Self.plaintext)
    }

    @Test func authenticatedChunkKnownAnswer() throws {
        let position = ChunkCodec.Position(index: 3, final: false)
        let (chunk, leaf) = try Self.sealed(.authenticated, position)
        #expect(Hex.encode(leaf) == "1e3278d819b5ecb07485529251c997ea56fee4b12b280ea1e7c1b550002bb18b342ccbd7229cd4b147ea07aa1a691294")
        #expect(chunk == Self.plaintext, "an authenticated chunk is stored as it is")
        #expect(try Self.check(chunk, leaf, .authenticated, position).0 == .authentic)
    }

    @Test func everyDepartureFromTheLeafIsCaughtAndScrubbed() throws {
        let position = ChunkCodec.Position(index: 5, generation: 2, final: true)
        let (chunk, leaf) = try Self.sealed(.encrypted, position)
        let zeros = [UInt8](repeating: 0, count: chunk.count)

        var flipped = chunk
        flipped[40] ^= 1
        #expect(try Self.check(flipped, leaf, .encrypted, position) == (.altered, zeros))
        #expect(try Self.check(chunk, read: chunk.count - 1, leaf, .encrypted, position) == (.truncated, zeros))

        // Bytes that match the hash but not the AEAD's binding: another index, generation,
        // final flag or kind, or another tag.
        for other in [ChunkCodec.Position(index: 6, generation: 2, final: true), .init(index: 5, generation: 1, final: true),
                      .init(index: 5, generation: 2, final: false)] {
            #expect(try Self.check(chunk, leaf, .encrypted, other) == (.forged, zeros))
        }
        #expect(try Self.check(chunk, leaf, .authenticated, .init(index: 5, final: true)).0 == .forged)
        var tagFlipped = leaf
        tagFlipped[3] ^= 0x80
        #expect(try Self.check(chunk, tagFlipped, .encrypted, position) == (.forged, zeros))
    }

    /// Format 1's leaf is the tag alone: no hash to check, the AEAD decides.
    @Test func formatOneLeafIsTheTagAlone() throws {
        let position = ChunkCodec.Position(index: 5, generation: 2, final: true)
        let (chunk, leaf) = try Self.sealed(.encrypted, position)
        #expect(Leaf.size(.v1) == 16 && Leaf.size(.v2) == 48)
        let (result, opened) = try Self.check(chunk, Array(leaf[Leaf.tagRange]), .encrypted, position, version: .v1)
        #expect(result == .authentic && opened == Self.plaintext)
        var flipped = chunk
        flipped[0] ^= 1
        #expect(try Self.check(flipped, Array(leaf[Leaf.tagRange]), .encrypted, position, version: .v1).0 == .forged)
    }

    /// The AEAD binds a chunk to its file and position: another file ID or index gives other
    /// bytes; the final flag, in the AAD only, changes the tag alone.
    @Test func chunkBindingToFileAndPosition() {
        let keys = testKeys()
        let c = ChunkCipher()
        func seal(_ id: UInt8, _ index: UInt64, final: Bool = false) -> [UInt8] {
            var data = [UInt8](repeating: 0x42, count: 64)
            var tag = [UInt8](repeating: 0, count: 16)
            c.select(keys, fileID: [UInt8](repeating: id, count: 32))
            data.withUnsafeMutableBytes { d in tag.withUnsafeMutableBytes { t in c.seal(index: index, final: final, data: d, tag: t) } }
            return data + tag
        }
        let base = seal(1, 0)
        #expect(seal(1, 0) == base, "deterministic for the same file and index")
        #expect(seal(2, 0) != base)
        #expect(seal(1, 1) != base)
        #expect(Array(seal(1, 0, final: true).prefix(64)) == Array(base.prefix(64)), "final flag is AAD: same keystream")
        #expect(Array(seal(1, 0, final: true).suffix(16)) != Array(base.suffix(16)), "but a different tag")
    }
}

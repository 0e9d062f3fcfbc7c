import FSPFCrypto
import Glibc

/// A chunk's leaf in the tag tree (docs/FORMAT.md §6). Version 2: the chunk's 16-byte GCM tag,
/// then the SHA-256 of its stored bytes (ciphertext of an encrypted file, plaintext of an
/// authenticated one); a hole chunk's leaf is all zeros. Version 1: the tag alone.
enum Leaf {
    static let size = 48
    static let tagRange = 0..<16
    static let hashRange = 16..<48

    static func size(_ version: FormatVersion) -> Int { version == .v1 ? tagRange.count : size }
    /// Bytes of leaf `index` in a run of version-2 leaves.
    static func range(_ index: Int) -> Range<Int> { (index * size)..<((index + 1) * size) }
}

/// The one place a chunk meets its leaf: sealing stored bytes into a leaf, and checking stored
/// bytes against one. Writer, read-write mounts and readers all go through it, so a new leaf
/// hash or tag layout is a change here. The caller has selected the file's key on `cipher`.
enum ChunkCodec {
    /// A chunk's position as the AEAD binds it (docs/FORMAT.md §5).
    struct Position {
        let index: UInt64
        var generation: UInt32 = 0
        let final: Bool
    }

    enum Check: String {
        case authentic
        case truncated = "data truncated on disk"
        case altered = "data does not match the hash in its tag tree"
        case forged = "authentication failed"
    }

    /// Seals `chunk` (its exact stored length) into a version-2 `leaf`: encrypts it in place
    /// (encrypted files) or computes its MAC (authenticated ones) into the tag, then hashes the
    /// stored bytes, while they are still in cache.
    static func seal(_ chunk: UnsafeMutableRawBufferPointer, kind: ChunkKind, at position: Position,
                     leaf: UnsafeMutableRawBufferPointer, _ cipher: ChunkCipher) {
        precondition(leaf.count == Leaf.size)
        let tag = UnsafeMutableRawBufferPointer(rebasing: leaf[Leaf.tagRange])
        if kind == .encrypted {
            cipher.seal(index: position.index, generation: position.generation, final: position.final, data: chunk, tag: tag)
        } else {
            precondition(position.generation == 0, "authenticated chunks are never rewritten")
            cipher.mac(index: position.index, final: position.final, data: UnsafeRawBufferPointer(chunk), tag: tag)
        }
        cipher.sha256.digest(UnsafeRawBufferPointer(chunk), into: UnsafeMutableRawBufferPointer(rebasing: leaf[Leaf.hashRange]))
    }

    /// Checks `chunk` (its stored bytes, `read` of the `chunk.count` expected) against `leaf`:
    /// in version 2 the hash of the stored bytes first, then the AEAD, decrypting encrypted
    /// chunks in place. A chunk that is not authentic is scrubbed.
    static func check(_ chunk: UnsafeMutableRawBufferPointer, read: Int, version: FormatVersion, kind: ChunkKind,
                      at position: Position, leaf: UnsafeRawBufferPointer, _ cipher: ChunkCipher) -> Check {
        precondition(leaf.count == Leaf.size(version))
        guard read == chunk.count else {
            Sodium.zero(chunk)
            return .truncated
        }
        if version >= .v2 {
            var digest = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
            let same = withUnsafeMutableBytes(of: &digest) { d in
                cipher.sha256.digest(UnsafeRawBufferPointer(chunk), into: d)
                return memcmp(leaf.baseAddress! + Leaf.hashRange.lowerBound, d.baseAddress!, Leaf.hashRange.count) == 0
            }
            guard same else {
                Sodium.zero(chunk)
                return .altered
            }
        }
        let tag = UnsafeRawBufferPointer(rebasing: leaf[Leaf.tagRange])
        let ok = kind == .encrypted
            ? cipher.open(index: position.index, generation: position.generation, final: position.final, data: chunk, tag: tag)
            : cipher.verifyMAC(index: position.index, final: position.final, data: UnsafeRawBufferPointer(chunk), tag: tag)
        if !ok { Sodium.zero(chunk) }
        return ok ? .authentic : .forged
    }
}

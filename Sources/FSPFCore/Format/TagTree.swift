import FSPFCrypto
import FSPFSystem

/// Geometry and hashing of a file's tag tree (docs/FORMAT.md §5).
///
/// Level 0 holds the 16-byte chunk tags, 256 to a 4 KiB block. Level k > 0 holds the 32-byte
/// hashes of level k-1's blocks, 128 to a block. The top level is the first with one block.
/// The root binds the file's identity, sizes and chunk size to the top block, like
/// fs-verity's descriptor digest: the root alone then says what the tree describes.
public struct TreeGeometry: Equatable, Sendable {
    public static let blockSize = 4096
    public static let tagsPerBlock = blockSize / 16
    public static let hashesPerBlock = blockSize / 32

    public let chunkCount: UInt64
    /// Number of entries at each level, bottom first.
    public let entries: [UInt64]
    /// Byte offset of each level from the tree's start.
    public let levelOffsets: [UInt64]
    public let byteCount: UInt64

    public init(chunkCount: UInt64) {
        precondition(chunkCount >= 1)
        self.chunkCount = chunkCount
        var entries = [chunkCount]
        var offsets: [UInt64] = [0]
        var total = chunkCount * 16
        var blocks = (chunkCount + UInt64(TreeGeometry.tagsPerBlock) - 1) / UInt64(TreeGeometry.tagsPerBlock)
        while blocks > 1 {
            entries.append(blocks)
            offsets.append(total)
            total += blocks * 32
            blocks = (blocks + UInt64(TreeGeometry.hashesPerBlock) - 1) / UInt64(TreeGeometry.hashesPerBlock)
        }
        self.entries = entries
        self.levelOffsets = offsets
        self.byteCount = total
    }

    public var levels: Int { entries.count }
    public var topLevel: Int { entries.count - 1 }

    public static func entrySize(level: Int) -> Int { level == 0 ? 16 : 32 }
    public static func perBlock(level: Int) -> Int { level == 0 ? tagsPerBlock : hashesPerBlock }

    public func blockCount(level: Int) -> UInt64 {
        let per = UInt64(TreeGeometry.perBlock(level: level))
        return (entries[level] + per - 1) / per
    }

    /// Byte range of block `index` of `level`, relative to the tree's start.
    public func blockRange(level: Int, index: UInt64) -> (offset: UInt64, count: Int) {
        let per = UInt64(TreeGeometry.perBlock(level: level))
        let size = UInt64(TreeGeometry.entrySize(level: level))
        let first = index * per
        let n = min(per, entries[level] - first)
        return (levelOffsets[level] + first * size, Int(n * size))
    }

    /// Hash of a tree block: SHA-256("FSPF-NODE-v1" ‖ level ‖ index ‖ block).
    static func nodeHash(level: Int, index: UInt64, block: UnsafeRawBufferPointer) -> [UInt8] {
        var h = SHA256()
        h.update(nodeLabel)
        h.update(littleEndian: UInt8(level))
        h.update(littleEndian: index)
        h.update(block)
        return h.finish()
    }

    static let nodeLabel = Array("FSPF-NODE-v1".utf8)
    static let rootLabel = Array("FSPF-ROOT-v1".utf8)

    /// The file's root: SHA-256("FSPF-ROOT-v1" ‖ fileID ‖ kind ‖ size ‖ stored size ‖
    /// chunk size ‖ levels ‖ hash of the top block).
    static func root(fileID: [UInt8], kind: ChunkKind, size: UInt64, storedSize: UInt64, chunkSize: UInt32,
                     levels: Int, topHash: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(rootLabel)
        h.update(fileID)
        h.update(littleEndian: kind.rawValue)
        h.update(littleEndian: size)
        h.update(littleEndian: storedSize)
        h.update(littleEndian: chunkSize)
        h.update(littleEndian: UInt8(levels))
        h.update(topHash)
        return h.finish()
    }
}

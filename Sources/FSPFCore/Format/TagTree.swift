import FSPFCrypto

/// Geometry and hashing of a file's tag tree (docs/FORMAT.md §6).
///
/// Level 0 holds one leaf per chunk. Version 1: the chunk's 16-byte GCM tag, 256 to a 4 KiB
/// block. Version 2: the GCM tag and the SHA-256 of the chunk's stored bytes (48 bytes), 64 to a
/// 3 KiB block. Level k > 0 holds the 32-byte hashes of level k-1's blocks, 128 to a 4 KiB
/// block. The top level is the first with one block. The root binds the file's identity,
/// sizes and chunk size to the top block, like fs-verity's descriptor digest: the root alone
/// then says what the tree describes.
public struct TreeGeometry: Equatable, Sendable {
    public static let hashesPerBlock = 128
    public static let hashSize = 32
    /// The largest tree block, and a level's hashes of a full block of the level below.
    public static let blockSize = hashesPerBlock * hashSize

    public let version: FormatVersion
    public let chunkCount: UInt64
    /// Number of entries at each level, bottom first.
    public let entries: [UInt64]
    /// Byte offset of each level from the tree's start.
    public let levelOffsets: [UInt64]
    public let byteCount: UInt64

    /// Size of one level-0 entry.
    public static func leafSize(_ v: FormatVersion) -> Int { Leaf.size(v) }
    /// Level-0 entries per block.
    public static func leavesPerBlock(_ v: FormatVersion) -> Int { v == .v1 ? 256 : 64 }

    public init(chunkCount: UInt64, version: FormatVersion) {
        precondition(chunkCount >= 1)
        self.version = version
        self.chunkCount = chunkCount
        var entries = [chunkCount]
        var offsets: [UInt64] = [0]
        var total = chunkCount * UInt64(TreeGeometry.leafSize(version))
        let perLeafBlock = UInt64(TreeGeometry.leavesPerBlock(version))
        var blocks = (chunkCount + perLeafBlock - 1) / perLeafBlock
        while blocks > 1 {
            entries.append(blocks)
            offsets.append(total)
            total += blocks * UInt64(TreeGeometry.hashSize)
            blocks = (blocks + UInt64(TreeGeometry.hashesPerBlock) - 1) / UInt64(TreeGeometry.hashesPerBlock)
        }
        self.entries = entries
        self.levelOffsets = offsets
        self.byteCount = total
    }

    public var levels: Int { entries.count }
    public var topLevel: Int { entries.count - 1 }
    public var leafSize: Int { TreeGeometry.leafSize(version) }
    public var leavesPerBlock: Int { TreeGeometry.leavesPerBlock(version) }

    public func entrySize(level: Int) -> Int { level == 0 ? leafSize : TreeGeometry.hashSize }
    public func perBlock(level: Int) -> Int { level == 0 ? leavesPerBlock : TreeGeometry.hashesPerBlock }

    public func blockCount(level: Int) -> UInt64 {
        let per = UInt64(perBlock(level: level))
        return (entries[level] + per - 1) / per
    }

    /// Byte range of block `index` of `level`, relative to the tree's start.
    public func blockRange(level: Int, index: UInt64) -> (offset: UInt64, count: Int) {
        let per = UInt64(perBlock(level: level))
        let size = UInt64(entrySize(level: level))
        let first = index * per
        let n = min(per, entries[level] - first)
        return (levelOffsets[level] + first * size, Int(n * size))
    }

    /// Hash of a tree block: SHA-256("FSPF-NODE-v<version>" ‖ level ‖ index ‖ block).
    func nodeHash(level: Int, index: UInt64, block: UnsafeRawBufferPointer) -> [UInt8] {
        var h = SHA256()
        h.update(version == .v1 ? TreeGeometry.nodeLabel1 : TreeGeometry.nodeLabel2)
        h.update(littleEndian: UInt8(level))
        h.update(littleEndian: index)
        h.update(block)
        return h.finish()
    }

    static let nodeLabel1 = Array("FSPF-NODE-v1".utf8)
    static let rootLabel1 = Array("FSPF-ROOT-v1".utf8)
    static let nodeLabel2 = Array("FSPF-NODE-v2".utf8)
    static let rootLabel2 = Array("FSPF-ROOT-v2".utf8)

    /// The file's root: SHA-256("FSPF-ROOT-v<version>" ‖ fileID ‖ kind ‖ size ‖ stored size ‖
    /// chunk size ‖ levels ‖ hash of the top block).
    func root(fileID: [UInt8], kind: ChunkKind, size: UInt64, storedSize: UInt64, chunkSize: UInt32,
              topHash: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(version == .v1 ? TreeGeometry.rootLabel1 : TreeGeometry.rootLabel2)
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

extension TreeGeometry {
    /// Builds levels 1 to the top from level 0 and returns the hash of the top block, for
    /// `root`. The one tree builder: `read` fetches a block's bytes (tree-relative offset),
    /// `write` stores a run of a level's hashes, at most `blockSize` bytes at a time.
    func buildUpperLevels(read: (_ offset: UInt64, _ into: UnsafeMutableRawBufferPointer) throws -> Void,
                          write: (_ offset: UInt64, _ bytes: UnsafeRawBufferPointer) throws -> Void) rethrows -> [UInt8] {
        var block = [UInt8](repeating: 0, count: TreeGeometry.blockSize)
        func hashBlock(_ level: Int, _ index: UInt64) throws -> [UInt8] {
            let range = blockRange(level: level, index: index)
            return try block.withUnsafeMutableBytes { (buffer) throws -> [UInt8] in
                let part = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<range.count])
                try read(range.offset, part)
                return nodeHash(level: level, index: index, block: UnsafeRawBufferPointer(part))
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(TreeGeometry.blockSize)
        for level in 0..<topLevel {
            var written: UInt64 = 0
            let blocks = blockCount(level: level)
            for b in 0..<blocks {
                out += try hashBlock(level, b)
                if out.count == TreeGeometry.blockSize || b == blocks - 1 {
                    try out.withUnsafeBytes { try write(levelOffsets[level + 1] + written, $0) }
                    written += UInt64(out.count)
                    out.removeAll(keepingCapacity: true)
                }
            }
        }
        return try hashBlock(topLevel, 0)
    }

    /// The version-2 tag tree as stored (levels bottom-up) over `leaves`, one per chunk, with
    /// the zero leaf for every chunk `isHole` names; and the hash of its top block, for `root`.
    static func build(_ g: TreeGeometry, leaves: UnsafeRawBufferPointer, isHole: (Int) -> Bool) -> (tree: [UInt8], top: [UInt8]) {
        precondition(g.version == .v2 && leaves.count == Int(g.chunkCount) * Leaf.size)
        var tree = [UInt8](repeating: 0, count: Int(g.byteCount))
        let top = tree.withUnsafeMutableBytes { t in
            t.copyMemory(from: leaves)
            for c in 0..<Int(g.chunkCount) where isHole(c) { Sodium.zero(UnsafeMutableRawBufferPointer(rebasing: t[Leaf.range(c)])) }
            return g.buildUpperLevels(
                read: { offset, into in into.copyMemory(from: UnsafeRawBufferPointer(rebasing: t[Int(offset)..<(Int(offset) + into.count)])) },
                write: { offset, bytes in UnsafeMutableRawBufferPointer(rebasing: t[Int(offset)..<(Int(offset) + bytes.count)]).copyMemory(from: bytes) })
        }
        return (tree, top)
    }
}

import FSPFCrypto
import FSPFSystem

/// A run of chunks that are holes: never written, read as zeros (docs/FORMAT.md §7).
public struct HoleSpan: Equatable, Sendable {
    public var first: UInt64
    public var count: UInt64
    public init(first: UInt64, count: UInt64) { self.first = first; self.count = count }
    public var end: UInt64 { first + count }
}

extension Array where Element == HoleSpan {
    /// SEEK_DATA (`data`) or SEEK_HOLE from `offset` in a file of `size` whose chunks of `chunkSize`
    /// in these spans are holes; nil (ENXIO) when no data follows. `offset` is below `size`.
    public func seek(from offset: UInt64, size: UInt64, chunkSize: UInt64, data: Bool) -> UInt64? {
        // The hole span containing `offset`, or the first one after it.
        let i = firstIndex { $0.end * chunkSize > offset }
        if data {
            guard let i, self[i].first * chunkSize <= offset else { return offset }
            let next = self[i].end * chunkSize
            return next < size ? next : nil
        }
        guard let i else { return size }
        return Swift.max(offset, self[i].first * chunkSize)
    }

    /// Whether chunk `c` lies in one of these sorted spans (binary search).
    func containsChunk(_ c: UInt64) -> Bool {
        if isEmpty { return false }
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if self[mid].end <= c { lo = mid + 1 } else { hi = mid }
        }
        return lo < count && self[lo].first <= c
    }
}

/// A chunk of an encrypted file that was encrypted again after its first write, by a read-write
/// mount: its nonce carries `generation` (docs/FORMAT.md §5, §9). Chunks not listed have
/// generation 0.
public struct ChunkGeneration: Equatable, Sendable {
    public var chunk: UInt64
    public var generation: UInt32
    public init(chunk: UInt64, generation: UInt32) { self.chunk = chunk; self.generation = generation }
}

/// The protection record of an encrypted or authenticated file.
public struct ProtectedFile: Equatable, Sendable {
    public static let idSize = 32

    public var version: FormatVersion
    public var kind: ChunkKind
    public var chunkSize: UInt32
    /// Bytes of data the chunks cover: the Padmé-padded size for encrypted files, the file
    /// size for authenticated ones.
    public var storedSize: UInt64
    public var fileID: [UInt8]
    public var root: [UInt8]
    /// The object (header, [ciphertext,] tag tree), relative to the volume directory; empty
    /// when the tag tree is kept in the metadata (`inlineTree`).
    public var object: String
    /// Hole chunks, sorted, disjoint and not adjacent (version 2 only).
    public var holes: [HoleSpan]
    /// The tag tree of an authenticated file built step by step: kept in the metadata, as
    /// SCONE keeps an authenticated region's tags, so nothing is written beside its plaintext.
    public var inlineTree: [UInt8]?
    /// Chunks with a non-zero generation, sorted by chunk (encrypted files written by a
    /// read-write mount only).
    public var generations: [ChunkGeneration]

    public init(version: FormatVersion = .current, kind: ChunkKind, chunkSize: UInt32, storedSize: UInt64, fileID: [UInt8],
                root: [UInt8], object: String, holes: [HoleSpan] = [], inlineTree: [UInt8]? = nil,
                generations: [ChunkGeneration] = []) {
        self.version = version
        self.kind = kind
        self.chunkSize = chunkSize
        self.storedSize = storedSize
        self.fileID = fileID
        self.root = root
        self.object = object
        self.holes = holes
        self.inlineTree = inlineTree
        self.generations = generations
    }

    /// The generation chunk `c` was encrypted under (binary search; 0 unless listed).
    public func generation(of c: UInt64) -> UInt32 {
        if generations.isEmpty { return 0 }
        var lo = 0, hi = generations.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if generations[mid].chunk < c { lo = mid + 1 } else { hi = mid }
        }
        return lo < generations.count && generations[lo].chunk == c ? generations[lo].generation : 0
    }

    public var chunkCount: UInt64 {
        max(1, (storedSize + UInt64(chunkSize) - 1) / UInt64(chunkSize))
    }

    public var geometry: TreeGeometry { TreeGeometry(chunkCount: chunkCount, version: version) }

    /// Offset of the tag tree inside the object.
    public var treeOffset: UInt64 {
        UInt64(ObjectHeader.size) + (kind == .encrypted ? storedSize : 0)
    }

    public var objectSize: UInt64 { treeOffset + geometry.byteCount }

    /// Whether chunk `c` is a hole.
    public func isHole(_ c: UInt64) -> Bool { holes.containsChunk(c) }

    /// Bytes of the file that are holes (for st_blocks).
    public var holeBytes: UInt64 { holes.reduce(0) { $0 + $1.count } * UInt64(chunkSize) }
}

import Dispatch
import Glibc
import Synchronization
import FSPFCrypto
import FSPFSystem

/// Thread-safe random access to a protected volume. Every byte it returns has been
/// authenticated up to the sealed metadata; anything else is an `FSPFError.integrity`.
public final class VolumeReader: Sendable {
    /// Where the volume's bytes come from: everything this reader reads goes through it.
    public let storage: any VolumeStorage
    /// The sealed metadata file, and what the metadata's locations are relative to.
    public var metadataPath: String { storage.metadataPath }
    public var directory: String { storage.directory }
    /// What an attestation policy pins for this exact volume version.
    public let tag: VolumeTag
    public let metadata: VolumeMetadata
    let keys: VolumeKeys
    /// Path lookup, built at first use: the reader a read-write mount takes after each seal
    /// never needs it, and building it for 100,000 files was a large part of a seal. (A lock,
    /// not AtomicLazyReference: its operations are not inlinable, so ThreadSanitizer cannot
    /// see their ordering and reports the first use as a race.)
    private let lookupTable = Locked<Lookup?>(nil)
    private let geometries: [TreeGeometry?]
    private let handles = Locked<[Int: any StoredFile]>([:])
    let cache: TreeCache
    private static let maxOpenFiles = 512
    private static let cores = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    /// Smallest piece of a request worth a thread of its own.
    private static let parallelRunBytes = 256 << 10

    /// Opens the volume at `path` (a volume directory or its metadata file; `covered`: see
    /// `LocalStorage`).
    public convenience init(path: String, keys: VolumeKeys, expectedTag: [UInt8]? = nil, acceptVersion1: Bool = false,
                            cacheBytes: Int = 32 << 20, covered: [String] = []) throws {
        try self.init(storage: LocalStorage(path: path, covered: covered), keys: keys, expectedTag: expectedTag,
                      acceptVersion1: acceptVersion1, cacheBytes: cacheBytes)
    }

    /// Opens the volume in `storage`. With `expectedTag` (16 bytes: the short tag; 32: the full
    /// tag), any other version of the volume is refused before anything is read, and so is a
    /// format-1 volume unless `acceptVersion1` (its tag does not bind against key holders,
    /// FORMAT.md §13).
    public convenience init(storage: any VolumeStorage, keys: VolumeKeys, expectedTag: [UInt8]? = nil, acceptVersion1: Bool = false,
                            cacheBytes: Int = 32 << 20) throws {
        let (metadata, tag) = try SealedMetadata.open(storage.metadata(limit: 1 << 30), keys: keys, expectedTag: expectedTag,
                                                      acceptVersion1: acceptVersion1, path: storage.metadataPath)
        self.init(storage: storage, metadata: metadata, tag: tag, keys: keys, cacheBytes: cacheBytes)
    }

    /// The version a writer has just sealed to `metadataPath`, from the metadata it sealed:
    /// decrypting and decoding the file again would only repeat what the writer did.
    convenience init(sealed metadata: VolumeMetadata, tag: VolumeTag, metadataPath: String, keys: VolumeKeys, cacheBytes: Int) throws {
        self.init(storage: try LocalStorage(path: metadataPath), metadata: metadata, tag: tag, keys: keys, cacheBytes: cacheBytes)
    }

    private init(storage: any VolumeStorage, metadata: VolumeMetadata, tag: VolumeTag, keys: VolumeKeys, cacheBytes: Int) {
        self.storage = storage
        self.metadata = metadata
        self.tag = tag
        self.keys = keys
        self.cache = TreeCache(capacityBytes: cacheBytes)
        geometries = metadata.entries.map { if case .file(_, _, let p?, _) = $0.content { p.geometry } else { nil } }
    }

    // MARK: Listing

    public var entries: [Entry] { metadata.entries }

    private final class Lookup: Sendable {
        let index: [[UInt8]: Int]
        let children: [Int: [Int]]  // -1 is the root

        init(_ entries: [Entry]) {
            var index: [[UInt8]: Int] = [:]
            var children: [Int: [Int]] = [:]
            index.reserveCapacity(entries.count)
            for i in entries.indices {
                let path = entries[i].path
                index[Array(path.utf8)] = i
                let parent = Paths.parentInVolume(path)
                children[parent.isEmpty ? -1 : index[Array(parent.utf8)]!, default: []].append(i)
            }
            self.index = index
            self.children = children
        }
    }

    private var index: [[UInt8]: Int] { lookup.index }
    private var lookup: Lookup {
        lookupTable.withLock { table in
            if let table { return table }
            let built = Lookup(metadata.entries)
            table = built
            return built
        }
    }
    public var version: FormatVersion { metadata.version }

    /// Index of the entry at a volume path ("" or "/" is the root: nil).
    public func entryIndex(_ path: String) throws -> Int? {
        let p = try Paths.normalize(path)
        if p.isEmpty { return nil }
        guard let i = index[Array(p.utf8)] else {
            throw FSPFError.noInput(path: p, reason: "no such file or directory in the volume")
        }
        return i
    }

    /// The entry at a volume path: type, mode, size, modification time (nil for the root).
    public func stat(_ path: String) throws -> Entry? {
        try entryIndex(path).map { metadata.entries[$0] }
    }

    /// Children of a directory (nil = root), in path order.
    public func children(of directory: Int?) -> [Int] {
        lookup.children[directory ?? -1] ?? []
    }

    /// The child called `name` (raw bytes) of a directory (nil = root), if any.
    public func child(of directory: Int?, named name: UnsafeBufferPointer<UInt8>) -> Int? {
        var key: [UInt8] = []
        if let d = directory {
            key.reserveCapacity(metadata.entries[d].path.utf8.count + 1 + name.count)
            key += metadata.entries[d].path.utf8
            key.append(UInt8(ascii: "/"))
        }
        key += name
        return index[key]
    }

    /// What a plain mount serves as its root: the volume's root (nil), unless the root region
    /// is not protected — a volume built for SCONE's runtime (`addr / --not-protected
    /// --kernel /`) — then the deepest directory holding every encrypted or authenticated
    /// region that has files. `/fspf/encrypted-files/job.py` is then `MOUNTPOINT/job.py`.
    public var servedDirectory: Int? {
        let regions = metadata.regions
        guard Region.of("", in: regions).kind == .notProtected else { return nil }
        let present = regions.filter { $0.kind != .notProtected && !$0.path.isEmpty }
            .compactMap { r in index[Array(r.path.utf8)].flatMap { metadata.entries[$0].isDirectory ? r.path : nil } }
        guard var common = present.first?.split(separator: "/") else { return nil }
        for p in present.dropFirst() {
            let parts = p.split(separator: "/")
            common = Array(zip(common, parts).prefix { $0 == $1 }.map(\.0))
        }
        return common.isEmpty ? nil : index[Array(common.joined(separator: "/").utf8)]
    }

    public func list(_ path: String) throws -> [Entry] {
        let i = try entryIndex(path)
        if let i, !metadata.entries[i].isDirectory {
            throw FSPFError.badInput(path: metadata.entries[i].path, reason: "not a directory")
        }
        return children(of: i).map { metadata.entries[$0] }
    }

    // MARK: Reading

    /// Reads up to `buffer.count` bytes at `offset` of the file at `path`; returns the count
    /// (0 at or past the end).
    public func read(_ path: String, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let i = try entryIndex(path) else { throw FSPFError.badInput(path: "/", reason: "is a directory") }
        return try read(entry: i, offset: offset, into: buffer)
    }

    public func read(_ path: String, offset: UInt64 = 0, length: Int? = nil) throws -> [UInt8] {
        guard let i = try entryIndex(path) else { throw FSPFError.badInput(path: "/", reason: "is a directory") }
        let size = metadata.entries[i].size
        let n = Int(min(UInt64(length ?? Int.max), size > offset ? size - offset : 0))
        var out = [UInt8](repeating: 0, count: n)
        let got = try out.withUnsafeMutableBytes { try read(entry: i, offset: offset, into: $0) }
        return Array(out[0..<got])
    }

    public func read(entry: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let i = metadata.entries[entry].linkOf ?? entry  // a hard link reads its first path's data
        let e = metadata.entries[i]
        guard case .file(let size, _, let protection, let plain) = e.content else {
            throw FSPFError.badInput(path: e.path, reason: "not a regular file")
        }
        guard let p = protection else {
            // Not-protected region: served as stored, by definition unverified.
            let fd = try handle(i) { try self.storage.open(plain!) }
            return try fd.read(into: buffer, at: offset)
        }
        let cipher = ChunkCipher.forCurrentThread()
        cipher.select(keys, fileID: p.fileID)
        if size == 0 {
            // Nothing to return, but the file's one chunk (padding) is still authenticated, so
            // a tampered empty file fails like any other (kernels do not even ask to read it).
            if offset == 0 { try require(i, p, 0, openChunk(i, p, 0, in: cipher.scratch(Int(p.storedSize)), cipher)) }
            return 0
        }
        let range = ChunkRange(offset: offset, capacity: buffer.count, size: size, storedSize: p.storedSize, chunkSize: p.chunkSize)
        func partial(_ piece: ChunkRange.Partial) throws {
            let work = cipher.scratch(piece.storedLength)
            try require(i, p, piece.chunk, openChunk(i, p, piece.chunk, in: work, cipher))
            UnsafeMutableRawBufferPointer(rebasing: buffer[piece.bufferOffset..<(piece.bufferOffset + piece.to - piece.from)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: work[piece.from..<piece.to]))
        }
        if let head = range.head { try partial(head) }
        if let whole = range.whole {
            // Whole chunks go straight into the caller's buffer, one pread per run of them, and
            // are checked and decrypted there. A large request is cut into runs for all cores
            // (hashing every byte, in format 2, costs more than decrypting it).
            let span = UnsafeMutableRawBufferPointer(rebasing: buffer[whole.bufferOffset..<(whole.bufferOffset + whole.storedLength)])
            let cs = Int(p.chunkSize)
            let chunks = Int(whole.end - whole.first)
            let runs = max(1, min(VolumeReader.cores, chunks, span.count / VolumeReader.parallelRunBytes))
            let data = try dataHandle(i, p)
            // Disjoint parts of the caller's buffer, one per run.
            let shared = SharedBuffer(span)
            @Sendable func run(_ r: Int, _ cipher: ChunkCipher) throws {
                let span = shared.buffer
                let first = chunks * r / runs, end = chunks * (r + 1) / runs
                let from = first * cs, to = min(end * cs, span.count)
                let part = UnsafeMutableRawBufferPointer(rebasing: span[from..<to])
                let got = try data.read(into: part, at: dataBase(p) + (whole.first + UInt64(first)) * UInt64(cs))
                var at = 0
                // The level-0 block is looked up once for the leaves it holds.
                let g = geometries[i]!
                var block: (index: UInt64, bytes: [UInt8])? = nil
                for chunk in (whole.first + UInt64(first))..<(whole.first + UInt64(end)) {
                    let length = min(cs, part.count - at)
                    let work = UnsafeMutableRawBufferPointer(rebasing: part[at..<(at + length)])
                    var leaf: ArraySlice<UInt8>? = nil
                    if !p.isHole(chunk) {
                        let index = chunk / UInt64(g.leavesPerBlock)
                        if block?.index != index { block = (index, try verifiedBlock(i, p, level: 0, index: index)) }
                        let offset = Int(chunk % UInt64(g.leavesPerBlock)) * g.leafSize
                        leaf = block!.bytes[offset..<(offset + g.leafSize)]
                    }
                    try require(i, p, chunk, openChunk(i, p, chunk, in: work, loaded: min(max(got - at, 0), length), leaf: leaf, cipher))
                    at += length
                }
            }
            if runs == 1 {
                try run(0, cipher)
            } else {
                let failure = Locked<(any Error)?>(nil)
                DispatchQueue.concurrentPerform(iterations: runs) { r in
                    do {
                        let c = ChunkCipher.forCurrentThread()
                        c.select(keys, fileID: p.fileID)
                        try run(r, c)
                    } catch {
                        failure.withLock { if $0 == nil { $0 = error } }
                    }
                }
                if let e = failure.withLock({ $0 }) { throw e }
            }
        }
        if let tail = range.tail { try partial(tail) }
        return range.count
    }

    /// The one path every chunk takes: unless the caller already read it (`loaded` bytes of
    /// it), read chunk `chunk` into `work` (exactly its stored length); take its leaf from the
    /// verified tag tree; check the chunk against it (`ChunkCodec.check`: decrypted in place,
    /// or scrubbed). A hole reads as zeros without touching the disk. A tag-tree failure
    /// throws; a bad chunk is reported, for the caller to word.
    func openChunk(_ i: Int, _ p: ProtectedFile, _ chunk: UInt64, in work: UnsafeMutableRawBufferPointer,
                   loaded: Int? = nil, leaf known: ArraySlice<UInt8>? = nil, _ cipher: ChunkCipher) throws -> ChunkCodec.Check {
        if p.isHole(chunk) {
            Sodium.zero(work)
            return .authentic
        }
        let leaf = try known ?? self.leaf(i, p, chunk)
        let got = try loaded ?? dataHandle(i, p).read(into: work, at: dataBase(p) + chunk * UInt64(p.chunkSize))
        let position = ChunkCodec.Position(index: chunk, generation: p.generation(of: chunk), final: chunk == p.chunkCount - 1)
        return leaf.withUnsafeBytes { ChunkCodec.check(work, read: got, version: p.version, kind: p.kind, at: position, leaf: $0, cipher) }
    }

    /// Turns a chunk that is not authentic into the integrity error naming file, chunk and bytes.
    private func require(_ i: Int, _ p: ProtectedFile, _ chunk: UInt64, _ result: ChunkCodec.Check) throws {
        guard result == .authentic else {
            let e = metadata.entries[i]
            throw integrity(e.path, chunk: chunk, cs: UInt64(p.chunkSize), size: e.size, result.rawValue)
        }
    }

    /// Where chunk data starts in the file `dataHandle` returns.
    private func dataBase(_ p: ProtectedFile) -> UInt64 { p.kind == .encrypted ? UInt64(ObjectHeader.size) : 0 }

    /// The on-disk data of a protected file: its object (encrypted) or its plaintext (authenticated).
    func dataHandle(_ i: Int, _ p: ProtectedFile) throws -> any StoredFile {
        if p.inlineTree == nil {
            let object = try objectHandle(i, p)
            guard p.kind == .authenticated else { return object }
        }
        guard case .file(let size, _, _, let plain) = metadata.entries[i].content else { preconditionFailure("not a file") }
        return try plainHandle(i, plain!, size: size)
    }

    /// Opens an entry's object or plaintext now, so that the file stays readable if its object
    /// is removed later (a read-write mount's unlinked open file).
    func prepare(entry: Int) throws {
        let i = metadata.entries[entry].linkOf ?? entry
        guard case .file(_, _, let p, let plain) = metadata.entries[i].content else { return }
        if let p { _ = try dataHandle(i, p) } else { _ = try handle(i) { try self.storage.open(plain!) } }
    }

    /// Target of a symlink entry.
    public func readLink(_ path: String) throws -> [UInt8] {
        guard let i = try entryIndex(path), case .symlink(let t) = metadata.entries[i].content else {
            throw FSPFError.badInput(path: path, reason: "not a symbolic link")
        }
        return t
    }

    // MARK: Internals

    func integrity(_ path: String, chunk: UInt64, cs: UInt64, size: UInt64, _ why: String) -> FSPFError {
        let first = chunk * cs
        let last = max(first, min(first + cs, max(size, 1)) - 1)
        return .integrity(path: path, reason: "chunk \(chunk) (bytes \(first)-\(last)): \(why)")
    }

    private func handle(_ i: Int, open: () throws -> any StoredFile) throws -> any StoredFile {
        if let fd = handles.withLock({ $0[i] }) { return fd }
        let fd = try open()
        handles.withLock { h in
            if h.count >= VolumeReader.maxOpenFiles { h.removeAll(keepingCapacity: true) }
            h[i] = fd
        }
        return fd
    }

    /// Opens an object, checking its header and exact size against the metadata.
    func objectHandle(_ i: Int, _ p: ProtectedFile) throws -> any StoredFile {
        let path = metadata.entries[i].path
        return try handle(i) {
            let fd: any StoredFile
            do { fd = try storage.open(p.object) } catch {
                throw FSPFError.integrity(path: path, reason: "object \(p.object) is missing or unreadable")
            }
            var header = [UInt8](repeating: 0, count: ObjectHeader.size)
            let n = try header.withUnsafeMutableBytes { try fd.read(into: $0, at: 0) }
            guard n == ObjectHeader.size, header == ObjectHeader.bytes(version: p.version, kind: p.kind, fileID: p.fileID) else {
                throw FSPFError.integrity(path: path, reason: "object \(p.object) has a wrong header (swapped or replaced)")
            }
            let actual = try fd.size()
            guard actual == p.objectSize else {
                throw FSPFError.integrity(path: path, reason: "object \(p.object) is \(actual) bytes, expected \(p.objectSize) (truncated or extended)")
            }
            return fd
        }
    }

    /// Plain data of an authenticated file; the object handle is cached under the entry, the
    /// plain file under its negative twin.
    func plainHandle(_ i: Int, _ plain: String, size: UInt64) throws -> any StoredFile {
        let path = metadata.entries[i].path
        return try handle(-2 - i) {
            let fd: any StoredFile
            do { fd = try storage.open(plain) } catch {
                throw FSPFError.integrity(path: path, reason: "\(plain) is missing or unreadable")
            }
            let actual = try fd.size()
            guard actual == size else {
                throw FSPFError.integrity(path: path, reason: "\(plain) is \(actual) bytes, expected \(size)")
            }
            return fd
        }
    }

    /// The verified leaf of a chunk: its GCM tag (version 1), or its GCM tag and the hash of its
    /// stored bytes (version 2).
    func leaf(_ i: Int, _ p: ProtectedFile, _ chunk: UInt64) throws -> ArraySlice<UInt8> {
        let g = geometries[i]!
        let perBlock = UInt64(g.leavesPerBlock)
        let block = try verifiedBlock(i, p, level: 0, index: chunk / perBlock)
        let at = Int(chunk % perBlock) * g.leafSize
        return block[at..<(at + g.leafSize)]
    }

    /// A tree block whose hash chain up to the sealed root has been checked; climbs only
    /// until it meets a cached (already verified) block.
    func verifiedBlock(_ i: Int, _ p: ProtectedFile, level: Int, index: UInt64) throws -> [UInt8] {
        let key = TreeCache.Key(entry: Int32(i), level: Int8(level), block: index)
        if let b = cache.get(key) { return b }
        let g = geometries[i]!
        let range = g.blockRange(level: level, index: index)
        let path = metadata.entries[i].path
        var block: [UInt8]
        if let tree = p.inlineTree {
            block = Array(tree[Int(range.offset)..<(Int(range.offset) + range.count)])
        } else {
            block = [UInt8](repeating: 0, count: range.count)
            let object = try objectHandle(i, p)
            let n = try block.withUnsafeMutableBytes { try object.read(into: $0, at: p.treeOffset + range.offset) }
            guard n == range.count else {
                throw FSPFError.integrity(path: path, reason: "tag tree block \(level)/\(index) truncated")
            }
        }
        let hash = block.withUnsafeBytes { g.nodeHash(level: level, index: index, block: $0) }
        if level == g.topLevel {
            let root = g.root(fileID: p.fileID, kind: p.kind, size: metadata.entries[i].size,
                              storedSize: p.storedSize, chunkSize: p.chunkSize, topHash: hash)
            guard Sodium.equal(root, p.root) else {
                throw FSPFError.integrity(path: path, reason: "tag tree root does not match the metadata")
            }
        } else {
            let parent = try verifiedBlock(i, p, level: level + 1, index: index / UInt64(TreeGeometry.hashesPerBlock))
            let at = Int(index % UInt64(TreeGeometry.hashesPerBlock)) * 32
            guard Sodium.equal(Array(parent[at..<(at + 32)]), hash) else {
                throw FSPFError.integrity(path: path, reason: "tag tree block \(level)/\(index) does not match its parent")
            }
        }
        cache.insert(key, block)
        return block
    }
}

/// A buffer handed to several threads that each touch their own disjoint part of it.
struct SharedBuffer: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
    init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }
}

import Dispatch
import FSPFCrypto
import FSPFSystem
import Glibc

/// The content of one encrypted file while a read-write mount writes it (docs/FORMAT.md §9,
/// "Written volumes").
///
/// It has a file ID of its own, random and never used before, so its key is new: a file that was
/// sealed is never encrypted again under its sealed ID (a crash would otherwise leave two
/// ciphertexts under one nonce on disk). Chunk c is encrypted under nonce (c, g) with g the
/// number of times chunk c was encrypted under this ID before, which only grows — across
/// truncation too — so no (key, nonce) pair is used twice. Chunks go to the object at their final
/// offsets as they are written (so writing 10 GiB needs no 10 GiB of memory); the last few
/// written chunks stay as plaintext in memory until evicted, so sequential small writes encrypt
/// each chunk once. The leaves stay in memory until `finish` writes the tag tree; every chunk
/// read back from the object is checked against its leaf (the disk is the attacker's).
///
/// Invariant: every byte past `size`, in memory or stored, is zero (bytes past a file's size are
/// zeros in the format, and growing the file must show zeros there).
///
/// Not thread-safe: the volume serialises access.
final class WrittenContent {
    let fileID: [UInt8]
    let chunkSize: Int
    /// Where its object goes, its path there, and as the metadata records it.
    private let objects: WrittenObjects
    let objectName: String
    let objectLocation: String
    private(set) var size: UInt64
    private let keys: VolumeKeys
    /// The sealed content this one started from, read for chunks not yet written (copied at `finish`).
    let base: BaseContent?

    private var object: FileDescriptor?
    private var created = false
    /// Per chunk: how many times it was encrypted under this ID (its next generation).
    private var encryptions: [UInt32] = []
    private var states: [State] = []
    /// One leaf per chunk (`Leaf.size` bytes): the leaf of its stored encryption.
    private var leaves: [UInt8] = []
    /// The chunk stored as the final one (shorter and flagged final), if any.
    private var finalChunk: (index: Int, length: Int)?
    /// Object bytes an earlier `finish` wrote a tag tree into: a chunk there cannot be a hole.
    private var treeSpan: Range<UInt64>?
    /// The record of the final form `finish` last gave the object, until the next change.
    private var finished: ProtectedFile?
    /// Plaintext chunks not yet stored, least recently written first.
    private var dirty: [(chunk: Int, buffer: UnsafeMutableRawBufferPointer)] = []

    enum State: UInt8 { case unwritten, stored, base }

    /// Plaintext chunks kept per file before the oldest is encrypted and stored.
    static let dirtyLimit = 4

    struct BaseContent {
        let reader: VolumeReader
        let entry: Int
        let protection: ProtectedFile
        let size: UInt64
    }

    init(keys: VolumeKeys, chunkSize: Int, objects: WrittenObjects, base: BaseContent?) {
        self.keys = keys
        self.base = base
        self.objects = objects
        self.chunkSize = base.map { Int($0.protection.chunkSize) } ?? chunkSize
        fileID = Sodium.randomBytes(ProtectedFile.idSize)
        objectName = ObjectStore.name(fileID: fileID, written: true)
        objectLocation = ObjectStore.directoryName + "/" + objectName
        size = base?.size ?? 0
        if let base {
            let n = chunks(covering: base.size)
            encryptions = [UInt32](repeating: 0, count: n)
            states = [State](repeating: .base, count: n)
            leaves = [UInt8](repeating: 0, count: n * Leaf.size)
        }
    }

    deinit {
        for d in dirty { Self.release(d.buffer) }
    }

    private func chunks(covering bytes: UInt64) -> Int { Int((bytes + UInt64(chunkSize) - 1) / UInt64(chunkSize)) }

    private func grow(to n: Int) {
        guard n > states.count else { return }
        encryptions += repeatElement(0, count: n - states.count)
        leaves += repeatElement(0, count: (n - states.count) * Leaf.size)
        states += repeatElement(.unwritten, count: n - states.count)
    }

    // MARK: Reading and writing

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < size else { return 0 }
        let count = Int(min(UInt64(buffer.count), size - offset))
        let cs = UInt64(chunkSize)
        var done = 0
        var scratch: UnsafeMutableRawBufferPointer? = nil
        defer { if let scratch { Self.release(scratch) } }
        while done < count {
            let position = offset + UInt64(done)
            let c = Int(position / cs), within = Int(position % cs)
            let n = min(chunkSize - within, count - done)
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + n)])
            if let d = dirty.first(where: { $0.chunk == c }) {
                target.copyMemory(from: UnsafeRawBufferPointer(rebasing: d.buffer[within..<(within + n)]))
            } else {
                if scratch == nil { scratch = Self.allocate(chunkSize) }
                try load(c, into: scratch!)
                target.copyMemory(from: UnsafeRawBufferPointer(rebasing: scratch![within..<(within + n)]))
            }
            done += n
        }
        return count
    }

    func write(at offset: UInt64, _ data: UnsafeRawBufferPointer) throws {
        guard !data.isEmpty else { return }  // writing nothing changes nothing, the size included
        let end = offset + UInt64(data.count)
        guard end <= Padding.maximumSize else { throw Errno(EFBIG) }
        finished = nil
        let cs = UInt64(chunkSize)
        var done = 0
        while done < data.count {
            let position = offset + UInt64(done)
            let c = Int(position / cs), within = Int(position % cs)
            let whole = within == 0 ? (data.count - done) / chunkSize : 0
            if whole > 0 {
                // Whole chunks go from the caller's buffer to the object in one write,
                // encrypted on all cores.
                try storeWhole(first: c, UnsafeRawBufferPointer(rebasing: data[done..<(done + whole * chunkSize)]))
                done += whole * chunkSize
                continue
            }
            let n = min(chunkSize - within, data.count - done)
            let buffer = try dirtyBuffer(c, whole: false)
            UnsafeMutableRawBufferPointer(rebasing: buffer[within..<(within + n)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: data[done..<(done + n)]))
            done += n
        }
        size = max(size, end)
        try evict(keeping: Self.dirtyLimit)
    }

    func truncate(to newSize: UInt64) throws {
        guard newSize <= Padding.maximumSize else { throw Errno(EFBIG) }
        finished = nil
        if newSize < size {
            let kept = chunks(covering: newSize)
            for d in dirty where d.chunk >= kept { Self.release(d.buffer) }
            dirty.removeAll { $0.chunk >= kept }
            for c in min(kept, states.count)..<states.count { states[c] = .unwritten }
            if finalChunk.map({ $0.index >= kept }) ?? false { finalChunk = nil }
            // The chunk holding the new end keeps zeros past it.
            let within = Int(newSize % UInt64(chunkSize))
            if within != 0 {
                let buffer = try dirtyBuffer(kept - 1, whole: false)
                Sodium.zero(UnsafeMutableRawBufferPointer(rebasing: buffer[within...]))
            }
        }
        size = newSize
        try evict(keeping: Self.dirtyLimit)
    }

    /// Stores every plaintext chunk and makes the object durable (fsync).
    func flush(sync: Bool) throws {
        try evict(keeping: 0)
        if sync, let object { try object.sync() }
    }

    /// Whether chunk `c` holds data: used for SEEK_DATA/SEEK_HOLE and st_blocks.
    func holds(chunk c: Int) -> Bool {
        c < states.count && (states[c] != .unwritten || dirty.contains { $0.chunk == c })
    }

    var allocatedBytes: UInt64 {
        UInt64((0..<states.count).filter { holds(chunk: $0) }.count) * UInt64(chunkSize)
    }

    // MARK: Sealing

    /// Brings the object to the format's final form for the current size: padding chunks
    /// stored, the final chunk stored short and flagged, chunks past the end cut, holes where
    /// nothing was written, the tag tree after the data. Returns the protection record. Done
    /// at the last close too, so that a seal finds most files final already; writing on after
    /// it is allowed until the ID is sealed (then the volume gives the file new content). The
    /// caller makes it durable (syncfs before the metadata).
    func finish() throws -> ProtectedFile {
        if let finished { return finished }
        let stored = Padding.padme(size)
        let cs = UInt64(chunkSize)
        let n = max(1, chunks(covering: stored))
        grow(to: n)
        for d in dirty where d.chunk >= n { Self.release(d.buffer) }
        dirty.removeAll { $0.chunk >= n }
        for c in n..<states.count { states[c] = .unwritten }
        var holes: [HoleSpan] = []
        let wholeDataChunks = Int(size / cs)  // chunks lying wholly inside the content may be holes
        var scratch: UnsafeMutableRawBufferPointer? = nil
        defer { if let scratch { Self.release(scratch) } }
        for c in 0..<n {
            let length = Int(min(cs, stored - UInt64(c) * cs))
            let final = c == n - 1
            if let k = dirty.firstIndex(where: { $0.chunk == c }) {
                try store(c, dirty[k].buffer, length: length, final: final)
                Self.release(dirty.remove(at: k).buffer)
                continue
            }
            switch states[c] {
            // A hole must be a hole in the object too: a chunk stored before (then cut off by
            // a truncation) is stored again, as zeros.
            case .unwritten where c < wholeDataChunks && encryptions[c] == 0 && !overlapsTree(c):
                if let last = holes.last, last.end == UInt64(c) { holes[holes.count - 1].count += 1 } else {
                    holes.append(HoleSpan(first: UInt64(c), count: 1))
                }
                continue
            case .base where c < wholeDataChunks && base!.protection.chunkSize == UInt32(chunkSize) && base!.protection.isHole(UInt64(c)):
                states[c] = .unwritten
                if let last = holes.last, last.end == UInt64(c) { holes[holes.count - 1].count += 1 } else {
                    holes.append(HoleSpan(first: UInt64(c), count: 1))
                }
                continue
            case .stored where final ? finalChunk.map({ $0 == (c, length) }) ?? false : finalChunk?.index != c:
                continue  // already in its final form
            default:
                if scratch == nil { scratch = Self.allocate(chunkSize) }
                try load(c, into: scratch!)
                try store(c, scratch!, length: length, final: final)
            }
        }
        let object = try objectFile()
        let geometry = TreeGeometry(chunkCount: UInt64(n), version: .v2)
        var generations: [ChunkGeneration] = []
        for c in 0..<n where states[c] == .stored && encryptions[c] > 1 {
            generations.append(ChunkGeneration(chunk: UInt64(c), generation: encryptions[c] - 1))
        }
        let (tree, top) = leaves.withUnsafeBytes { l in
            TreeGeometry.build(geometry, leaves: UnsafeRawBufferPointer(rebasing: l[0..<(n * Leaf.size)]), isHole: { self.states[$0] != .stored })
        }
        let treeOffset = UInt64(ObjectHeader.size) + stored
        let span = treeOffset..<(treeOffset + UInt64(tree.count))
        treeSpan = treeSpan.map { min($0.lowerBound, span.lowerBound)..<max($0.upperBound, span.upperBound) } ?? span
        try tree.withUnsafeBytes { try object.write($0, at: treeOffset) }
        try object.truncate(to: treeOffset + UInt64(tree.count))
        let root = geometry.root(fileID: fileID, kind: .encrypted, size: size, storedSize: stored, chunkSize: UInt32(chunkSize), topHash: top)
        finished = ProtectedFile(version: .v2, kind: .encrypted, chunkSize: UInt32(chunkSize), storedSize: stored, fileID: fileID,
                                 root: root, object: objectLocation, holes: holes, generations: generations)
        return finished!
    }

    // MARK: Chunks

    private func overlapsTree(_ c: Int) -> Bool {
        guard let treeSpan else { return false }
        let start = UInt64(ObjectHeader.size) + UInt64(c) * UInt64(chunkSize)
        return treeSpan.overlaps(start..<(start + UInt64(chunkSize)))
    }

    /// The plaintext buffer of chunk `c`, loaded from where it lies unless the caller overwrites it whole.
    private func dirtyBuffer(_ c: Int, whole: Bool) throws -> UnsafeMutableRawBufferPointer {
        if let k = dirty.firstIndex(where: { $0.chunk == c }) {
            let d = dirty.remove(at: k)
            dirty.append(d)
            return d.buffer
        }
        let buffer = Self.allocate(chunkSize)
        do {
            if !whole { try load(c, into: buffer) }
        } catch {
            Self.release(buffer)
            throw error
        }
        grow(to: c + 1)
        dirty.append((c, buffer))
        return buffer
    }

    private func evict(keeping limit: Int) throws {
        while dirty.count > limit {
            let d = dirty[0]
            try store(d.chunk, d.buffer, length: chunkSize, final: false)
            dirty.removeFirst()
            Self.release(d.buffer)
        }
    }

    /// Chunk `c`'s plaintext (zeros past the content) into `buffer` (chunkSize bytes).
    private func load(_ c: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
        Sodium.zero(buffer)
        guard c < states.count else { return }
        switch states[c] {
        case .unwritten:
            return
        case .base:
            let b = base!
            let from = UInt64(c) * UInt64(chunkSize)
            guard from < b.size else { return }
            let want = Int(min(UInt64(chunkSize), b.size - from))
            let got = try b.reader.read(entry: b.entry, offset: from, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            guard got == want else { throw FSPFError.integrity(path: b.reader.metadata.entries[b.entry].path, reason: "short read of its sealed content") }
        case .stored:
            let length = finalChunk?.index == c ? finalChunk!.length : chunkSize
            let work = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
            let got = try objectFile().read(into: work, at: UInt64(ObjectHeader.size) + UInt64(c) * UInt64(chunkSize))
            let cipher = ChunkCipher.forCurrentThread()
            cipher.select(keys, fileID: fileID)
            let position = ChunkCodec.Position(index: UInt64(c), generation: encryptions[c] - 1, final: finalChunk?.index == c)
            let check = leaves.withUnsafeBytes { l in
                ChunkCodec.check(work, read: got, version: .v2, kind: .encrypted, at: position, leaf: UnsafeRawBufferPointer(rebasing: l[Leaf.range(c)]), cipher)
            }
            guard check == .authentic else {  // scrubbed by the check
                throw FSPFError.integrity(path: objectLocation, reason: "chunk \(c) written by this mount was altered on disk")
            }
        }
    }

    /// Encrypts the first `length` bytes of `plaintext` as chunk `c` under its next generation
    /// (in a copy: the plaintext stays for the caller if anything fails), writes it to the
    /// object and records its leaf.
    private func store(_ c: Int, _ plaintext: UnsafeMutableRawBufferPointer, length: Int, final: Bool) throws {
        let generation = encryptions[c]
        guard generation < UInt32.max else {
            throw FSPFError.io(path: objectLocation, operation: "encrypt chunk \(c) again (2^32 times already under this file ID)", errno: EFBIG)
        }
        let object = try objectFile()
        let cipher = ChunkCipher.forCurrentThread()
        cipher.select(keys, fileID: fileID)
        let data = cipher.scratch(length)
        data.copyMemory(from: UnsafeRawBufferPointer(rebasing: plaintext[0..<length]))
        // The generation is spent once used, whatever happens next.
        encryptions[c] = generation + 1
        var leaf = [UInt8](repeating: 0, count: Leaf.size)
        leaf.withUnsafeMutableBytes { ChunkCodec.seal(data, kind: .encrypted, at: .init(index: UInt64(c), generation: generation, final: final), leaf: $0, cipher) }
        try object.write(UnsafeRawBufferPointer(data), at: UInt64(ObjectHeader.size) + UInt64(c) * UInt64(chunkSize))
        leaves.replaceSubrange(Leaf.range(c), with: leaf)
        states[c] = .stored
        if final { finalChunk = (c, length) } else if finalChunk?.index == c { finalChunk = nil }
    }

    /// Stores `data.count / chunkSize` whole chunks from chunk `first` on: one buffer, the chunks
    /// encrypted and hashed in parallel runs (each under its next generation), one write. Any
    /// plaintext kept for those chunks is dropped: it is overwritten.
    private func storeWhole(first: Int, _ data: UnsafeRawBufferPointer) throws {
        let n = data.count / chunkSize
        grow(to: first + n)
        guard encryptions[first..<(first + n)].allSatisfy({ $0 < UInt32.max }) else {
            throw FSPFError.io(path: objectLocation, operation: "encrypt a chunk again (2^32 times already under this file ID)", errno: EFBIG)
        }
        let object = try objectFile()
        let out = ChunkCipher.forCurrentThread().scratch(data.count)
        out.copyMemory(from: data)
        let generations = Array(encryptions[first..<(first + n)])
        for c in first..<(first + n) { encryptions[c] += 1 }  // spent, whatever happens next
        var fresh = [UInt8](repeating: 0, count: n * Leaf.size)
        let cs = chunkSize, keys = self.keys, fileID = self.fileID
        fresh.withUnsafeMutableBytes { leaves in
            let shared = (out: SharedBuffer(out), leaves: SharedBuffer(leaves))
            let runs = max(1, min(Self.cores, n / 4))
            DispatchQueue.concurrentPerform(iterations: runs) { r in
                let cipher = ChunkCipher.forCurrentThread()
                cipher.select(keys, fileID: fileID)
                for j in (n * r / runs)..<(n * (r + 1) / runs) {
                    ChunkCodec.seal(UnsafeMutableRawBufferPointer(rebasing: shared.out.buffer[(j * cs)..<((j + 1) * cs)]), kind: .encrypted,
                                    at: .init(index: UInt64(first + j), generation: generations[j], final: false),
                                    leaf: UnsafeMutableRawBufferPointer(rebasing: shared.leaves.buffer[Leaf.range(j)]), cipher)
                }
            }
        }
        try object.write(UnsafeRawBufferPointer(out), at: UInt64(ObjectHeader.size) + UInt64(first) * UInt64(cs))
        leaves.replaceSubrange((first * Leaf.size)..<((first + n) * Leaf.size), with: fresh)
        for c in first..<(first + n) { states[c] = .stored }
        if let f = finalChunk, f.index >= first && f.index < first + n { finalChunk = nil }
        for d in dirty where d.chunk >= first && d.chunk < first + n { Self.release(d.buffer) }
        dirty.removeAll { $0.chunk >= first && $0.chunk < first + n }
    }

    private static let cores = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))

    /// Lets go of the object's descriptor (a file's last close): a volume of 100,000 files
    /// written must not hold 100,000 descriptors. The next use opens it again.
    func close() {
        object = nil
    }

    private func objectFile() throws -> FileDescriptor {
        if let object { return object }
        if created {
            let fd = try objects.store().reopen(objectName)
            object = fd
            return fd
        }
        let fd = try objects.store().create(objectName)
        do {
            try ObjectHeader.bytes(version: .v2, kind: .encrypted, fileID: fileID).withUnsafeBytes { try fd.write($0, at: 0) }
        } catch {
            objects.remove(objectName)
            throw error
        }
        object = fd
        created = true
        return fd
    }

    /// Plaintext buffers: zeroed when released.
    private static func allocate(_ count: Int) -> UnsafeMutableRawBufferPointer {
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 64)
        b.initializeMemory(as: UInt8.self, repeating: 0)
        return b
    }

    private static func release(_ buffer: UnsafeMutableRawBufferPointer) {
        Sodium.zero(buffer)
        buffer.deallocate()
    }
}

/// Where a read-write mount's new objects go: `written/` in the volume's own store, the store
/// made when the first object is (a mount that writes nothing leaves the directory as it was).
/// Used under the volume's lock.
final class WrittenObjects: @unchecked Sendable {
    private let volume: Directory
    private var own: ObjectStore?

    init(volume: Directory, store: ObjectStore?) {
        self.volume = volume
        own = store
    }

    func store() throws -> ObjectStore {
        if let own { return own }
        let made = try ObjectStore.open(in: volume, create: true)!
        own = made
        return made
    }

    func remove(_ name: String) { own?.remove(name) }
}

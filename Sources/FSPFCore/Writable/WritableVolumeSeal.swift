import Dispatch
import FSPFCrypto
import FSPFSystem
import Glibc

/// Sealing a written volume into a new version, and removing the objects no version names.
extension WritableVolume {
    /// Seals the tree as a new version unless nothing changed since the last: every file
    /// written is brought to its final form and synced, then the metadata is replaced
    /// atomically; objects no longer named are removed. Returns the tag of the version on
    /// disk. If anything fails, the previous version stays on disk and writing goes on.
    /// `freezing`: once sealed, every change is refused (EROFS) until `thaw`, so the tag
    /// returned stays the last (`fspf seal --unmount` asks so before it unmounts).
    @discardableResult
    public func seal(freezing: Bool = false) throws -> VolumeTag {
        try mutex.withLock { _ in
            let tag = try sealUnderLock()
            if freezing { frozen = true }
            return tag
        }
    }

    func sealUnderLock() throws -> VolumeTag {
        do {
            guard changed else { return reader.tag }
            let previous = reader
            // What of `previous` the new version keeps naming (its objects are not removed).
            var carried = [Bool](repeating: false, count: previous.entries.count)
            let (paths, named) = namesInPathOrder()
            var entries: [Entry] = []
            entries.reserveCapacity(paths.count)
            // A hard link's content is recorded under its first path.
            var firstOfLinked: [ObjectIdentifier: Int] = [:]
            for (path, n) in zip(paths, named) {
                var e = n.entry(path: path)
                if n.names > 1, let f = firstOfLinked[ObjectIdentifier(n)] {
                    e = entries[f]
                    e.path = path
                    e.linkOf = f
                } else {
                    switch n.content {
                    case .sealed(let s):
                        e.content = s.reader.entries[s.entry].content
                        if s.reader === previous { carried[s.entry] = true }
                    case .written(let c):
                        e.content = .file(size: c.size, region: .encrypted, protection: try c.finish(), plain: nil)
                        if n.opens == 0 { c.close() }
                    case .none: break
                    }
                    if n.names > 1 { firstOfLinked[ObjectIdentifier(n)] = entries.count }
                }
                entries.append(e)
            }
            let root = nodes[Self.rootInode]!.entry(path: "")
            let metadata = VolumeMetadata(version: .v2, reproducible: false, regions: regions, root: root, entries: entries)
            let (file, tag) = SealedMetadata.seal(metadata, keys: keys)
            // Every object the metadata names is on the disk before the metadata is.
            try anchor.descriptor.syncFileSystem()
            try anchor.writeAtomically(Paths.lastComponent(metadataPath), file, replacing: true)
            reader = try VolumeReader(sealed: metadata, tag: tag, metadataPath: metadataPath, keys: keys, cacheBytes: cacheBytes)
            var retired: [WrittenContent] = []
            for (i, n) in named.enumerated() where n.kind == .file && entries[i].linkOf == nil {
                if case .written(let c) = n.content { retired.append(c) }
                n.content = .sealed(SealedRef(reader: reader, entry: i, size: entries[i].size))
            }
            changed = false
            prune(after: previous, carried: &carried)
            Self.release(Retired(contents: retired, reader: previous, paths: paths))
            return tag
        }
    }

    /// Changes are accepted again after `seal(freezing: true)` (the unmount that followed it failed).
    public func thaw() { mutex.withLock { _ in frozen = false } }

    func unfrozen() throws {
        guard !frozen else { throw Errno(EROFS) }
    }

    /// What a seal replaced, freed after it returns: freeing 100,000 contents and a version's
    /// metadata is a good part of a seal's time, and nothing waits for it.
    struct Retired: @unchecked Sendable {  // the contents are no longer reachable from the volume
        let contents: [WrittenContent]
        let reader: VolumeReader
        let paths: [String]
    }

    static func release(_ retired: Retired) {
        DispatchQueue.global(qos: .utility).async { withExtendedLifetime(retired) {} }
    }

    /// Every name below the root with its node, sorted by path bytes as the format lists
    /// entries. The paths are compared in one buffer (sorting 100,000 separate arrays is mostly
    /// reference counting).
    func namesInPathOrder() -> (paths: [String], nodes: [Node]) {
        var bytes: [UInt8] = []
        var spans: [(start: Int, count: Int)] = []
        var found: [Node] = []
        var stack: [(path: [UInt8], node: Node)] = [([], nodes[Self.rootInode]!)]
        while let (prefix, dir) = stack.popLast() {
            for (name, ino) in dir.children {
                let n = nodes[ino]!
                let start = bytes.count
                if !prefix.isEmpty {
                    bytes += prefix
                    bytes.append(UInt8(ascii: "/"))
                }
                bytes += name
                spans.append((start, bytes.count - start))
                found.append(n)
                if n.kind == .directory { stack.append((Array(bytes[start...]), n)) }
            }
        }
        return bytes.withUnsafeBufferPointer { b in
            let base = b.baseAddress ?? UnsafePointer(bitPattern: 1)!
            var keys = spans.indices.map { SortKey(bytes: base + spans[$0].start, count: spans[$0].count, index: $0) }
            keys.sort()
            return (keys.map { String(decoding: UnsafeBufferPointer(start: $0.bytes, count: $0.count), as: UTF8.self) },
                    keys.map { found[$0.index] })
        }
    }

    /// A path in `namesInPathOrder`'s buffer, ordered by its bytes.
    struct SortKey: Comparable {
        let bytes: UnsafePointer<UInt8>
        let count: Int
        let index: Int
        static func < (a: SortKey, b: SortKey) -> Bool {
            let r = memcmp(a.bytes, b.bytes, min(a.count, b.count))
            return r != 0 ? r < 0 : a.count < b.count
        }
        static func == (a: SortKey, b: SortKey) -> Bool { a.count == b.count && memcmp(a.bytes, b.bytes, a.count) == 0 }
    }

    /// At open: every file in the volume's own store that the sealed version does not name,
    /// and the metadata a seal was writing (what a crashed mount left). Through descriptors: a
    /// link anywhere below is removed as a link or refused, never followed.
    func prune(_ own: ObjectStore?) {
        if let own { own.prune(keeping: stores.names(in: own, of: reader.entries.compactMap(\.storedObject))) }
        let name = Paths.lastComponent(metadataPath)
        for raw in (try? anchor.list()) ?? [] {
            let candidate = String(decoding: raw, as: UTF8.self)
            if FileSystem.isAtomicWriteLeftover(candidate, of: name) { _ = try? anchor.removeFile(candidate) }
        }
    }

    /// After a seal: the objects of `previous` that the new version does not name, unless a
    /// file still open after its last name went holds them (as its content or the base of
    /// content being written) — no walk over the store, no set of every object.
    func prune(after previous: VolumeReader, carried: inout [Bool]) {
        for n in nodes.values where n.names == 0 {
            switch n.content {
            case .sealed(let s) where s.reader === previous: carried[s.entry] = true
            case .written(let c): if let b = c.base, b.reader === previous { carried[b.entry] = true }
            default: break
            }
        }
        var dropped = Set<String>()
        for (i, e) in previous.entries.enumerated() where !carried[i] {
            if let o = e.storedObject { dropped.insert(o) }
        }
        guard !dropped.isEmpty else { return }
        // Objects are one per file; this only makes sure no named one is ever removed.
        for e in reader.entries { if let o = e.storedObject { dropped.remove(o) } }
        for o in dropped { stores.remove(o) }
    }
}

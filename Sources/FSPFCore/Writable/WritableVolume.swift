import Dispatch
import FSPFCrypto
import FSPFSystem
import Glibc

/// A protected volume open for writing: the file tree of its last sealed version, changed in
/// memory and in new objects, sealed into a new version on demand (docs/FORMAT.md §10, "Written
/// volumes"). What is on disk is always one sealed version: `seal` writes the new metadata last,
/// atomically, after every object it names is durable; objects no version names are removed
/// after it (and when a volume is opened, for what a crash left behind).
///
/// Inodes are numbers the caller (the FUSE front end) uses; the root is 1. Files in encrypted
/// regions can be written; authenticated and not-protected regions are read-only (their
/// plaintext lies at its path, and the sealed version must stay intact). Hard links are
/// refused (EPERM), as are special files; existing hard links of the volume stay linked.
///
/// Thread-safe: one lock over the tree and the content being written; reading a file
/// unchanged since the last seal goes to the sealed version's reader without it.
public final class WritableVolume: @unchecked Sendable {
    public let metadataPath: String
    /// The metadata's directory, held (and locked: one writer per volume, as for `fspf
    /// encrypt`) for the volume's lifetime: every change is made through it, nothing below it
    /// followed (docs/SECURITY.md, "Links below a volume").
    let anchor: Directory
    /// Where new objects go: `written/` in the volume's own store.
    let written: WrittenObjects
    /// The stores the versions' locations name, for removing objects no version names.
    let stores: ObjectStores
    let keys: VolumeKeys
    let regions: [Region]
    let cacheBytes: Int
    let mutex = Locked(())

    var reader: VolumeReader
    var nodes: [UInt64: Node] = [:]
    var nextInode: UInt64 = 2
    /// Anything changed since the last seal.
    var changed = false
    /// Every change refused (EROFS) after `seal(freezing:)` until `thaw`: the version sealed then
    /// stays the last one, whatever the mount's users do before it is unmounted.
    var frozen = false
    /// The tag of the version on disk.
    public var tag: VolumeTag { mutex.withLock { _ in reader.tag } }
    public var sealedFiles: Int { mutex.withLock { _ in reader.entries.count } }

    public static let rootInode: UInt64 = 1

    // MARK: Opening

    /// Opens the version `expectedTag` names (nil: whatever is there; the caller says so).
    /// Format 1 is refused (`fspf upgrade` first). Objects that no version names — what a
    /// crashed mount left — are removed.
    public convenience init(path: String, keys: VolumeKeys, expectedTag: [UInt8]?, cacheBytes: Int = 32 << 20) throws {
        let metadataPath = try SealedMetadata.locate(path)
        try self.init(metadataPath: metadataPath, claimed: try Self.claim(Paths.parent(metadataPath)), keys: keys,
                      expectedTag: expectedTag, cacheBytes: cacheBytes)
    }

    init(metadataPath: String, claimed: Directory, keys: VolumeKeys, expectedTag: [UInt8]?, cacheBytes: Int) throws {
        anchor = claimed
        let reader = try VolumeReader(path: metadataPath, keys: keys, expectedTag: expectedTag, cacheBytes: cacheBytes)
        guard reader.version == .v2 else {
            throw FSPFError.badInput(path: metadataPath, reason: "format version 1 cannot be written: convert it with 'fspf upgrade' first")
        }
        // A store that is not a real directory (a link planted in its place) is refused before
        // anything is written or removed.
        let own = try ObjectStore.open(in: claimed, create: false)
        self.metadataPath = metadataPath
        // Contents being written hold this, and may outlive the volume a moment (they are freed
        // after a seal, on another thread): not the descriptor that holds the writer's lock.
        written = WrittenObjects(volume: try claimed.reopened(), store: own)
        stores = ObjectStores(metadataDirectory: claimed)
        self.keys = keys
        self.regions = reader.metadata.regions
        self.cacheBytes = cacheBytes
        self.reader = reader
        load()
        prune(own)
    }

    /// A new, empty volume in `directory` (created, or empty), sealed at once so that the
    /// directory is a volume from the start: an encrypted root region of `chunkSize`, the root
    /// owned by `uid`/`gid` with `mode`.
    public static func create(directory: String, keys: VolumeKeys, chunkSize: UInt32 = ChunkSize.default,
                              mode: UInt32 = 0o755, uid: UInt32 = getuid(), gid: UInt32 = getgid(), cacheBytes: Int = 32 << 20) throws -> WritableVolume {
        guard ChunkSize.isValid(chunkSize) else { throw FSPFError.usage("chunk size \(chunkSize): a power of two from 4 KiB to 16 MiB") }
        if mkdir(directory, 0o755) != 0 && errno != EEXIST { throw FSPFError.io(path: directory, operation: "mkdir", errno: errno) }
        guard FileSystem.isDirectory(directory) else { throw FSPFError.outputExists(path: directory) }
        let lock = try claim(directory)
        guard try lock.list().isEmpty else { throw FSPFError.outputExists(path: directory) }
        let now = Self.now()
        let root = Entry(path: "", mode: mode & 0o7777, mtimeSeconds: Int64(now.tv_sec), mtimeNanoseconds: UInt32(now.tv_nsec),
                         content: .directory, uid: uid, gid: gid)
        let metadata = VolumeMetadata(version: .v2, reproducible: false, regions: [Region(path: "", kind: .encrypted, chunkSize: chunkSize)],
                                      root: root, entries: [])
        let (file, tag) = SealedMetadata.seal(metadata, keys: keys)
        try lock.writeAtomically(SealedMetadata.fileName, file, replacing: false)
        return try WritableVolume(metadataPath: Paths.join(directory, SealedMetadata.fileName), claimed: lock, keys: keys,
                                  expectedTag: tag.full, cacheBytes: cacheBytes)
    }

    static func claim(_ directory: String) throws -> Directory {
        let d = try Directory.open(directory)
        guard d.lockExclusively() else { throw FSPFError.outputBusy(path: directory) }
        return d
    }

    /// The tree of the sealed version as nodes; a hard-linked file is one node with several names.
    func load() {
        let m = reader.metadata
        let r = m.rootEntry
        let root = Node(ino: Self.rootInode, kind: .directory, attributes: r, region: Region.of("", in: regions))
        root.parent = Self.rootInode
        nodes = [Self.rootInode: root]
        var byEntry: [Int: Node] = [:]
        var directories: [String: Node] = ["": root]
        for (i, e) in m.entries.enumerated() {
            let parent = directories[Paths.parentInVolume(e.path)]!
            let name = Array(Paths.lastComponent(e.path).utf8)
            let node: Node
            if let first = e.linkOf {
                node = byEntry[first]!
                node.names += 1
            } else {
                let kind: Node.Kind
                switch e.content {
                case .directory: kind = .directory
                case .symlink: kind = .symlink
                case .file: kind = .file
                }
                node = Node(ino: nextInode, kind: kind, attributes: e, region: Region.of(e.path, in: regions))
                nextInode += 1
                switch e.content {
                case .directory:
                    directories[e.path] = node
                    parent.subdirectories += 1
                case .symlink(let t): node.target = t
                case .file(let size, _, _, _): node.content = .sealed(SealedRef(reader: reader, entry: i, size: size))
                }
                node.parent = parent.ino
                node.name = name
                nodes[node.ino] = node
                byEntry[i] = node
            }
            parent.children[name] = node.ino
        }
    }

    // MARK: Looking up

    /// Attributes of `ino`, as stat reports them.
    public func attributes(_ ino: UInt64) throws -> stat {
        try mutex.withLock { _ in try node(ino).stat() }
    }

    /// The child `name` of directory `parent`; counts a kernel reference (see `forget`).
    public func lookup(_ parent: UInt64, _ name: [UInt8]) throws -> stat {
        try mutex.withLock { _ in
            let dir = try directory(parent)
            guard name.count <= Int(NAME_MAX) else { throw Errno(ENAMETOOLONG) }
            guard let ino = dir.children[name], let n = nodes[ino] else { throw Errno(ENOENT) }
            n.lookups += 1
            return n.stat()
        }
    }

    /// Counts a kernel reference the caller handed out (a readdirplus entry).
    public func remember(_ ino: UInt64) {
        mutex.withLock { _ in nodes[ino]?.lookups += 1 }
    }

    /// The kernel dropped `count` references to `ino`.
    public func forget(_ ino: UInt64, _ count: UInt64) {
        mutex.withLock { _ in
            guard let n = nodes[ino] else { return }
            n.lookups -= min(count, n.lookups)
            dropIfUnused(n)
        }
    }

    /// A directory's entries now (name, inode), for a listing that stays stable while it is read.
    public func listing(_ ino: UInt64) throws -> [(name: [UInt8], ino: UInt64)] {
        try mutex.withLock { _ in
            try directory(ino).children.map { ($0.key, $0.value) }.sorted { Paths.precedes($0.name, $1.name) }
        }
    }

    /// The parent of a directory (the root's is itself).
    public func parent(of ino: UInt64) throws -> UInt64 {
        try mutex.withLock { _ in try directory(ino).parent }
    }

    public func readLink(_ ino: UInt64) throws -> [UInt8] {
        try mutex.withLock { _ in
            let n = try node(ino)
            guard n.kind == .symlink else { throw Errno(EINVAL) }
            return n.target
        }
    }

    public func extendedAttribute(_ ino: UInt64, _ name: [UInt8]) throws -> [UInt8] {
        try mutex.withLock { _ in
            guard let x = try node(ino).xattrs.first(where: { $0.name == name }) else { throw Errno(ENODATA) }
            return x.value
        }
    }

    public func extendedAttributeNames(_ ino: UInt64) throws -> [UInt8] {
        try mutex.withLock { _ in try node(ino).xattrs.flatMap { $0.name + [0] } }
    }

    // MARK: Statistics

    public func statistics() -> statvfs {
        var s = Glibc.statvfs()
        _ = fstatvfs(anchor.descriptor.fd, &s)
        s.f_namemax = UInt(NAME_MAX)
        s.f_flag &= ~UInt(ST_RDONLY)
        return s
    }

    // MARK: Helpers (under the lock)

    func node(_ ino: UInt64) throws -> Node {
        guard let n = nodes[ino] else { throw Errno(ENOENT) }
        return n
    }

    func directory(_ ino: UInt64) throws -> Node {
        let n = try node(ino)
        guard n.kind == .directory else { throw Errno(ENOTDIR) }
        return n
    }

    func path(of dir: Node) -> String {
        var parts: [[UInt8]] = []
        var d = dir
        while d.ino != Self.rootInode {
            parts.append(d.name)
            d = nodes[d.parent]!
        }
        return String(decoding: Array(parts.reversed().joined(separator: [UInt8(ascii: "/")])), as: UTF8.self)
    }

    static func join(_ dir: String, _ name: [UInt8]) -> String {
        let n = String(decoding: name, as: UTF8.self)
        return dir.isEmpty ? n : dir + "/" + n
    }

    /// The region a new or changed `name` in `dir` belongs to; EROFS unless it is encrypted
    /// (and not ephemeral: what is written there would be sealed into a region that records nothing).
    /// Names must be UTF-8, as every path in the format.
    func writableRegion(for name: [UInt8], in dir: Node) throws -> Region {
        guard name.count <= Int(NAME_MAX) else { throw Errno(ENAMETOOLONG) }
        guard String(validating: name, as: UTF8.self) != nil else { throw Errno(EILSEQ) }
        let region = Region.of(Self.join(path(of: dir), name), in: regions)
        guard region.kind == .encrypted, !region.ephemeral else { throw Errno(EROFS) }
        return region
    }

    /// The content to write into: a sealed file gets content of its own, with a new ID,
    /// starting from the sealed bytes (none if it is being truncated to zero).
    func writable(_ n: Node, truncatingTo size: UInt64? = nil) throws -> WrittenContent {
        switch n.content {
        case .written(let c): return c
        case .sealed(let s):
            guard case .file(_, .encrypted, let p?, _) = s.reader.entries[s.entry].content else { throw Errno(EROFS) }
            let base = size == 0 ? nil : WrittenContent.BaseContent(reader: s.reader, entry: s.entry, protection: p, size: s.size)
            let c = WrittenContent(keys: keys, chunkSize: Int(p.chunkSize), objects: written, base: base)
            n.content = .written(c)
            return c
        case .none: throw Errno(EISDIR)
        }
    }

    /// Forgets a node nothing refers to any more. Content written since the last seal is in no
    /// version: its object goes now. A sealed object it held goes now if the version on disk no
    /// longer names it (it was unlinked before the last seal, which kept it for this node);
    /// otherwise the next seal removes it.
    func dropIfUnused(_ n: Node) {
        guard n.names == 0 && n.opens == 0 && n.ino != Self.rootInode else { return }
        // Nobody can read it any more (the kernel may still know the inode): its space goes now.
        var sealed: SealedRef? = nil
        switch n.content {
        case .written(let c):
            written.remove(c.objectName)
            sealed = c.base.map { SealedRef(reader: $0.reader, entry: $0.entry, size: $0.size) }
        case .sealed(let s): sealed = s
        case .none: break
        }
        n.content = .none
        if let s = sealed, s.reader !== reader, let o = s.reader.entries[s.entry].storedObject { stores.remove(o) }
        if n.lookups == 0 { nodes[n.ino] = nil }
    }

    public static func now() -> timespec {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return t
    }
}

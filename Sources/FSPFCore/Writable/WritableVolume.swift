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
    private let anchor: Directory
    /// Where new objects go: `written/` in the volume's own store.
    private let written: WrittenObjects
    /// The stores the versions' locations name, for removing objects no version names.
    private let stores: ObjectStores
    private let keys: VolumeKeys
    private let regions: [Region]
    private let cacheBytes: Int
    private let mutex = Locked(())

    private var reader: VolumeReader
    private var nodes: [UInt64: Node] = [:]
    private var nextInode: UInt64 = 2
    /// Anything changed since the last seal.
    private var changed = false
    /// Every change refused (EROFS) after `seal(freezing:)` until `thaw`: the version sealed then
    /// stays the last one, whatever the mount's users do before it is unmounted.
    private var frozen = false
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

    private init(metadataPath: String, claimed: Directory, keys: VolumeKeys, expectedTag: [UInt8]?, cacheBytes: Int) throws {
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

    private static func claim(_ directory: String) throws -> Directory {
        let d = try Directory.open(directory)
        guard d.lockExclusively() else { throw FSPFError.outputBusy(path: directory) }
        return d
    }

    /// The tree of the sealed version as nodes; a hard-linked file is one node with several names.
    private func load() {
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

    // MARK: Changing the tree

    public struct Caller: Sendable {
        public var uid: UInt32
        public var gid: UInt32
        public init(uid: UInt32, gid: UInt32) { self.uid = uid; self.gid = gid }
    }

    public func makeDirectory(_ parent: UInt64, _ name: [UInt8], mode: UInt32, caller: Caller) throws -> stat {
        try add(parent, name, kind: .directory, mode: mode, caller: caller)
    }

    public func makeFile(_ parent: UInt64, _ name: [UInt8], mode: UInt32, caller: Caller) throws -> stat {
        try add(parent, name, kind: .file, mode: mode, caller: caller)
    }

    public func makeSymlink(_ parent: UInt64, _ name: [UInt8], target: [UInt8], caller: Caller) throws -> stat {
        guard !target.isEmpty, target.count <= 4096, !target.contains(0) else { throw Errno(EINVAL) }
        return try add(parent, name, kind: .symlink, mode: 0o777, caller: caller, target: target)
    }

    private func add(_ parent: UInt64, _ name: [UInt8], kind: Node.Kind, mode: UInt32, caller: Caller, target: [UInt8] = []) throws -> stat {
        try mutex.withLock { _ in
            try unfrozen()
            let dir = try directory(parent)
            let region = try writableRegion(for: name, in: dir)
            guard dir.children[name] == nil else { throw Errno(EEXIST) }
            let now = Self.now()
            var e = Entry(path: "", mode: mode & 0o7777, mtimeSeconds: Int64(now.tv_sec), mtimeNanoseconds: UInt32(now.tv_nsec),
                          content: .directory, uid: caller.uid, gid: caller.gid)
            // A set-group-ID directory passes its group on, and the bit to directories (as ext4 does).
            if dir.mode & UInt32(S_ISGID) != 0 {
                e.gid = dir.gid
                if kind == .directory { e.mode |= UInt32(S_ISGID) }
            }
            let n = Node(ino: nextInode, kind: kind, attributes: e, region: region)
            nextInode += 1
            n.parent = dir.ino
            n.name = name
            n.target = target
            n.lookups = 1
            if kind == .file {
                n.content = .written(WrittenContent(keys: keys, chunkSize: Int(region.chunkSize), objects: written, base: nil))
            }
            if kind == .directory { dir.subdirectories += 1 }
            nodes[n.ino] = n
            dir.children[name] = n.ino
            dir.touch(now)
            changed = true
            return n.stat()
        }
    }

    public func unlink(_ parent: UInt64, _ name: [UInt8]) throws {
        try mutex.withLock { _ in
            try unfrozen()
            let dir = try directory(parent)
            _ = try writableRegion(for: name, in: dir)
            guard let ino = dir.children[name], let n = nodes[ino] else { throw Errno(ENOENT) }
            guard n.kind != .directory else { throw Errno(EISDIR) }
            dir.children[name] = nil
            n.names -= 1
            let now = Self.now()
            dir.touch(now)
            n.ctime = now
            changed = true
            dropIfUnused(n)
        }
    }

    public func removeDirectory(_ parent: UInt64, _ name: [UInt8]) throws {
        try mutex.withLock { _ in
            try unfrozen()
            let dir = try directory(parent)
            _ = try writableRegion(for: name, in: dir)
            guard let ino = dir.children[name], let n = nodes[ino] else { throw Errno(ENOENT) }
            guard n.kind == .directory else { throw Errno(ENOTDIR) }
            guard n.children.isEmpty else { throw Errno(ENOTEMPTY) }
            guard !regions.contains(where: { $0.path == path(of: n) }) else { throw Errno(EBUSY) }
            dir.children[name] = nil
            dir.subdirectories -= 1
            n.names = 0
            dir.touch(Self.now())
            changed = true
            dropIfUnused(n)
        }
    }

    /// rename(2), with RENAME_NOREPLACE; RENAME_EXCHANGE and moves between regions are refused
    /// (EINVAL, EXDEV).
    public func rename(_ parent: UInt64, _ name: [UInt8], to newParent: UInt64, _ newName: [UInt8], flags: UInt32) throws {
        try mutex.withLock { _ in
            try unfrozen()
            guard flags & ~UInt32(Self.renameNoReplace) == 0 else { throw Errno(EINVAL) }
            let from = try directory(parent), to = try directory(newParent)
            let sourceRegion = try writableRegion(for: name, in: from)
            let targetRegion = try writableRegion(for: newName, in: to)
            guard let ino = from.children[name], let n = nodes[ino] else { throw Errno(ENOENT) }
            guard sourceRegion.path == targetRegion.path else { throw Errno(EXDEV) }
            if n.kind == .directory {
                // A directory holding a region's root would carry the region along.
                let old = path(of: n), new = Self.join(path(of: to), newName)
                if regions.contains(where: { !$0.path.isEmpty && (Paths.isWithin($0.path, old) || Paths.isWithin($0.path, new)) }) {
                    throw Errno(EXDEV)
                }
                // Not into itself.
                var a: Node? = to
                while let d = a {
                    if d.ino == n.ino { throw Errno(EINVAL) }
                    a = d.ino == Self.rootInode ? nil : nodes[d.parent]
                }
            }
            if let existing = to.children[newName], let target = nodes[existing] {
                if existing == ino { return }
                guard flags & UInt32(Self.renameNoReplace) == 0 else { throw Errno(EEXIST) }
                switch (n.kind == .directory, target.kind == .directory) {
                case (true, false): throw Errno(ENOTDIR)
                case (false, true): throw Errno(EISDIR)
                case (true, true):
                    guard target.children.isEmpty else { throw Errno(ENOTEMPTY) }
                    to.subdirectories -= 1
                    target.names = 0
                case (false, false):
                    target.names -= 1
                }
                target.ctime = Self.now()
                to.children[newName] = nil
                dropIfUnused(target)
            }
            from.children[name] = nil
            to.children[newName] = ino
            if n.kind == .directory {
                from.subdirectories -= 1
                to.subdirectories += 1
                n.parent = to.ino
            }
            n.name = newName
            let now = Self.now()
            from.touch(now)
            to.touch(now)
            n.ctime = now
            changed = true
        }
    }

    /// Names (with their NUL) and values of one file's extended attributes, at most.
    public static let extendedAttributeBytes = 65536

    public static let renameNoReplace: Int32 = 1  // RENAME_NOREPLACE

    /// What setattr may change; nil leaves it.
    public struct AttributeChange: Sendable {
        public var mode: UInt32?
        public var uid: UInt32?
        public var gid: UInt32?
        public var size: UInt64?
        public var atime: timespec?
        public var mtime: timespec?
        public init() {}
    }

    public func setAttributes(_ ino: UInt64, _ change: AttributeChange) throws -> stat {
        try mutex.withLock { _ in
            try unfrozen()
            let n = try node(ino)
            guard n.region.kind == .encrypted else { throw Errno(EROFS) }
            let now = Self.now()
            if let size = change.size {
                guard n.kind == .file else { throw Errno(n.kind == .directory ? EISDIR : EINVAL) }
                try writable(n, truncatingTo: size).truncate(to: size)
                n.mtime = now
            }
            if let mode = change.mode { n.mode = mode & 0o7777 }
            if let uid = change.uid { n.uid = uid }
            if let gid = change.gid { n.gid = gid }
            if let atime = change.atime { n.atime = atime }
            if let mtime = change.mtime { n.mtime = mtime }
            n.ctime = now
            changed = true
            return n.stat()
        }
    }

    public func setExtendedAttribute(_ ino: UInt64, _ name: [UInt8], _ value: [UInt8], create: Bool, replace: Bool) throws {
        try mutex.withLock { _ in
            try unfrozen()
            let n = try node(ino)
            guard n.region.kind == .encrypted else { throw Errno(EROFS) }
            // Stored as the format stores them; the kernel enforces no ACL of a read-write mount.
            guard name.starts(with: Array("user.".utf8)) || name.starts(with: Array("trusted.".utf8)) else { throw Errno(EOPNOTSUPP) }
            guard name.count <= ExtendedAttribute.maximumNameLength else { throw Errno(ERANGE) }
            guard value.count <= ExtendedAttribute.maximumValueLength else { throw Errno(E2BIG) }
            let i = n.xattrs.firstIndex { !$0.name.lexicographicallyPrecedes(name) }
            let exists = i.map { n.xattrs[$0].name == name } ?? false
            if create && exists { throw Errno(EEXIST) }
            if replace && !exists { throw Errno(ENODATA) }
            // Bounded per file like ext4's and XFS's (and listxattr's 64 KiB), so the sealed
            // metadata cannot be grown without limit through one file.
            let others = n.xattrs.filter { $0.name != name }.reduce(0) { $0 + $1.name.count + 1 + $1.value.count }
            guard others + name.count + 1 + value.count <= Self.extendedAttributeBytes else { throw Errno(ENOSPC) }
            if exists { n.xattrs[i!].value = value } else { n.xattrs.insert(ExtendedAttribute(name: name, value: value), at: i ?? n.xattrs.count) }
            n.ctime = Self.now()
            changed = true
        }
    }

    public func removeExtendedAttribute(_ ino: UInt64, _ name: [UInt8]) throws {
        try mutex.withLock { _ in
            try unfrozen()
            let n = try node(ino)
            guard n.region.kind == .encrypted else { throw Errno(EROFS) }
            guard let i = n.xattrs.firstIndex(where: { $0.name == name }) else { throw Errno(ENODATA) }
            n.xattrs.remove(at: i)
            n.ctime = Self.now()
            changed = true
        }
    }

    // MARK: File content

    /// An open: counted, so that an unlinked file lives until its last release. An open of a
    /// sealed encrypted file takes its object's descriptor now, so a later seal that removes
    /// the unlinked file's object cannot take it away.
    /// `truncate`: O_TRUNC (libfuse passes it to open: atomic_o_trunc).
    public func open(_ ino: UInt64, write: Bool, truncate: Bool = false) throws {
        try mutex.withLock { _ in
            let n = try node(ino)
            switch n.kind {
            case .directory: throw Errno(EISDIR)
            case .symlink: throw Errno(ELOOP)
            case .file: break
            }
            if write || truncate { try unfrozen() }
            if (write || truncate) && n.region.kind != .encrypted { throw Errno(EROFS) }
            if truncate && n.size > 0 {
                try writable(n, truncatingTo: 0).truncate(to: 0)
                let now = Self.now()
                n.mtime = now
                n.ctime = now
                changed = true
            }
            if case .sealed(let s) = n.content { try s.reader.prepare(entry: s.entry) }
            n.opens += 1
        }
    }

    /// A handle closed: what it wrote is encrypted and stored; at the last close of a file that
    /// still has a name, its object is brought to its final form (so that a seal has little left
    /// to do).
    public func release(_ ino: UInt64) throws {
        try mutex.withLock { _ in
            guard let n = nodes[ino] else { return }
            n.opens = max(0, n.opens - 1)
            defer { dropIfUnused(n) }
            guard case .written(let c) = n.content else { return }
            guard n.opens == 0 else { return try c.flush(sync: false) }
            if n.names > 0 { _ = try c.finish() } else { try c.flush(sync: false) }
            c.close()
        }
    }

    /// close(2) of a handle (FUSE's flush): what it wrote is encrypted and stored now, so that a
    /// full disk is reported to close, which programs check, rather than lost at release.
    public func flush(_ ino: UInt64) throws {
        try mutex.withLock { _ in
            if case .written(let c) = try node(ino).content { try c.flush(sync: false) }
        }
    }

    /// fsync: stored and on the disk. (Durable as a version only at the next seal.)
    public func sync(_ ino: UInt64) throws {
        try mutex.withLock { _ in
            if case .written(let c) = try node(ino).content { try c.flush(sync: true) }
        }
    }

    public func read(_ ino: UInt64, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        enum Source { case sealed(SealedRef), read(Int) }
        let source: Source = try mutex.withLock { _ in
            switch try node(ino).content {
            case .sealed(let s): return .sealed(s)
            case .written(let c): return .read(try c.read(at: offset, into: buffer))
            case .none: throw Errno(EISDIR)
            }
        }
        switch source {
        case .sealed(let s): return try s.reader.read(entry: s.entry, offset: offset, into: buffer)
        case .read(let n): return n
        }
    }

    public func write(_ ino: UInt64, at offset: UInt64, _ data: UnsafeRawBufferPointer) throws {
        try mutex.withLock { _ in
            try unfrozen()
            let n = try node(ino)
            guard n.kind == .file else { throw Errno(EISDIR) }
            guard n.region.kind == .encrypted else { throw Errno(EROFS) }
            try writable(n).write(at: offset, data)
            let now = Self.now()
            n.mtime = now
            n.ctime = now
            changed = true
        }
    }

    /// SEEK_DATA / SEEK_HOLE at chunk granularity for content being written; a sealed file
    /// answers from its hole list.
    public func seek(_ ino: UInt64, offset: UInt64, data: Bool) throws -> UInt64 {
        try mutex.withLock { _ in
            let n = try node(ino)
            let size = n.size
            guard offset < size else { throw Errno(ENXIO) }
            switch n.content {
            case .written(let c):
                let cs = UInt64(c.chunkSize)
                var chunk = offset / cs
                while chunk * cs < size {
                    if c.holds(chunk: Int(chunk)) == data { return max(offset, chunk * cs) }
                    chunk += 1
                }
                if data { throw Errno(ENXIO) }
                return size
            case .sealed(let s):
                let p: ProtectedFile? = { if case .file(_, _, let p, _) = s.reader.entries[s.entry].content { return p } else { return nil } }()
                guard let next = (p?.holes ?? []).seek(from: offset, size: size, chunkSize: UInt64(p?.chunkSize ?? 1), data: data) else {
                    throw Errno(ENXIO)
                }
                return next
            case .none:
                throw Errno(EINVAL)
            }
        }
    }

    // MARK: Sealing

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

    private func sealUnderLock() throws -> VolumeTag {
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

    private func unfrozen() throws {
        guard !frozen else { throw Errno(EROFS) }
    }

    /// What a seal replaced, freed after it returns: freeing 100,000 contents and a version's
    /// metadata is a good part of a seal's time, and nothing waits for it.
    private struct Retired: @unchecked Sendable {  // the contents are no longer reachable from the volume
        let contents: [WrittenContent]
        let reader: VolumeReader
        let paths: [String]
    }

    private static func release(_ retired: Retired) {
        DispatchQueue.global(qos: .utility).async { withExtendedLifetime(retired) {} }
    }

    /// Every name below the root with its node, sorted by path bytes as the format lists
    /// entries. The paths are compared in one buffer (sorting 100,000 separate arrays is mostly
    /// reference counting).
    private func namesInPathOrder() -> (paths: [String], nodes: [Node]) {
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
    private struct SortKey: Comparable {
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
    private func prune(_ own: ObjectStore?) {
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
    private func prune(after previous: VolumeReader, carried: inout [Bool]) {
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

    // MARK: Statistics

    public func statistics() -> statvfs {
        var s = Glibc.statvfs()
        _ = fstatvfs(anchor.descriptor.fd, &s)
        s.f_namemax = UInt(NAME_MAX)
        s.f_flag &= ~UInt(ST_RDONLY)
        return s
    }

    // MARK: Helpers (under the lock)

    private func node(_ ino: UInt64) throws -> Node {
        guard let n = nodes[ino] else { throw Errno(ENOENT) }
        return n
    }

    private func directory(_ ino: UInt64) throws -> Node {
        let n = try node(ino)
        guard n.kind == .directory else { throw Errno(ENOTDIR) }
        return n
    }

    private func path(of dir: Node) -> String {
        var parts: [[UInt8]] = []
        var d = dir
        while d.ino != Self.rootInode {
            parts.append(d.name)
            d = nodes[d.parent]!
        }
        return String(decoding: Array(parts.reversed().joined(separator: [UInt8(ascii: "/")])), as: UTF8.self)
    }

    private static func join(_ dir: String, _ name: [UInt8]) -> String {
        let n = String(decoding: name, as: UTF8.self)
        return dir.isEmpty ? n : dir + "/" + n
    }

    /// The region a new or changed `name` in `dir` belongs to; EROFS unless it is encrypted
    /// (and not ephemeral: what is written there would be sealed into a region that records nothing).
    /// Names must be UTF-8, as every path in the format.
    private func writableRegion(for name: [UInt8], in dir: Node) throws -> Region {
        guard name.count <= Int(NAME_MAX) else { throw Errno(ENAMETOOLONG) }
        guard String(validating: name, as: UTF8.self) != nil else { throw Errno(EILSEQ) }
        let region = Region.of(Self.join(path(of: dir), name), in: regions)
        guard region.kind == .encrypted, !region.ephemeral else { throw Errno(EROFS) }
        return region
    }

    /// The content to write into: a sealed file gets content of its own, with a new ID,
    /// starting from the sealed bytes (none if it is being truncated to zero).
    private func writable(_ n: Node, truncatingTo size: UInt64? = nil) throws -> WrittenContent {
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
    private func dropIfUnused(_ n: Node) {
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

/// A file's content as of a sealed version: its reader and entry.
struct SealedRef {
    let reader: VolumeReader
    let entry: Int
    let size: UInt64
}

/// One inode of a volume being written.
final class Node {
    enum Kind { case directory, file, symlink }
    enum Content {
        case none
        case sealed(SealedRef)
        case written(WrittenContent)
    }

    let ino: UInt64
    let kind: Kind
    var mode: UInt32
    var uid: UInt32
    var gid: UInt32
    var mtime: timespec
    var ctime: timespec
    var atime: timespec
    var xattrs: [ExtendedAttribute]
    /// The region the node lies in (a rename never moves it to another).
    let region: Region
    /// Names in the tree (hard links of a sealed volume have several; 0 once unlinked).
    var names = 1
    var lookups: UInt64 = 0
    var opens = 0
    /// A directory's parent and a node's last name (for paths of directories).
    var parent: UInt64 = 0
    var name: [UInt8] = []
    var children: [[UInt8]: UInt64] = [:]
    var subdirectories = 0
    var target: [UInt8] = []
    var content: Content = .none

    init(ino: UInt64, kind: Kind, attributes e: Entry, region: Region) {
        self.ino = ino
        self.kind = kind
        self.region = region
        mode = e.mode
        uid = e.uid
        gid = e.gid
        mtime = timespec(tv_sec: Int(e.mtimeSeconds), tv_nsec: Int(e.mtimeNanoseconds))
        ctime = mtime
        atime = mtime
        xattrs = e.xattrs
    }

    var size: UInt64 {
        switch content {
        case .sealed(let s): return s.size
        case .written(let c): return c.size
        case .none: return kind == .symlink ? UInt64(target.count) : 0
        }
    }

    func touch(_ now: timespec) {
        mtime = now
        ctime = now
    }

    func stat() -> Glibc.stat {
        var st = Glibc.stat()
        st.st_ino = __ino_t(ino)
        st.st_uid = uid
        st.st_gid = gid
        st.st_mtim = mtime
        st.st_ctim = ctime
        st.st_atim = atime
        st.st_blksize = 65536
        switch kind {
        case .directory:
            st.st_mode = S_IFDIR | mode_t(mode)
            st.st_nlink = nlink_t(2 + subdirectories)
        case .symlink:
            st.st_mode = S_IFLNK | 0o777
            st.st_nlink = nlink_t(names)
            st.st_size = off_t(target.count)
        case .file:
            st.st_mode = S_IFREG | mode_t(mode)
            st.st_nlink = nlink_t(names)
            st.st_size = off_t(size)
            switch content {
            case .written(let c):
                st.st_blocks = blkcnt_t(min(c.allocatedBytes, (size + 511) & ~511) / 512)
                st.st_blksize = c.chunkSize
            case .sealed(let s):
                var holes: UInt64 = 0
                if case .file(_, _, let p?, _) = s.reader.entries[s.entry].content {
                    holes = p.holeBytes
                    st.st_blksize = Int(p.chunkSize)
                }
                st.st_blocks = blkcnt_t((size - min(size, holes) + 511) / 512)
            case .none: break
            }
        }
        return st
    }

    /// The entry a seal records (content filled in by the caller for files).
    func entry(path: String) -> Entry {
        var e = Entry(path: path, mode: mode & 0o7777, mtimeSeconds: Int64(mtime.tv_sec), mtimeNanoseconds: UInt32(mtime.tv_nsec),
                      content: .directory, uid: uid, gid: gid, xattrs: xattrs)
        if kind == .symlink { e.content = .symlink(target: target) }
        return e
    }
}

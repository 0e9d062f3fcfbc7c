import Dispatch
import FSPFCrypto
import FSPFSystem
import Glibc

/// Changing a written volume's tree: new nodes, unlink, rename, attributes (under the lock).
extension WritableVolume {
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

    func add(_ parent: UInt64, _ name: [UInt8], kind: Node.Kind, mode: UInt32, caller: Caller, target: [UInt8] = []) throws -> stat {
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
}

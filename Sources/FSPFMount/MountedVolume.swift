import CFuse3
import FSPFCore
import FSPFCrypto
import FSPFSystem
import Glibc
import Logging

/// What the FUSE callbacks see: the verified reader plus the mapping between volume
/// entries and inode numbers (root = 1, entry i = i + 2; the paths of a hard-linked file all
/// have its first path's inode). The volume is immutable while mounted, so inodes, attributes
/// and listings never change.
final class MountedVolume: @unchecked Sendable {
    let reader: VolumeReader
    let logger: Logger
    let trace: Bool
    /// Owner shown for every entry: the volume's own (format 2) unless mapped (-o uid=, gid=);
    /// a format-1 volume records none and shows the daemon's.
    let uidMap: uid_t?
    let gidMap: gid_t?
    /// Attribute and entry cache lifetime given to the kernel: long, nothing changes.
    let timeout: Double = 86_400
    /// Called once the kernel's INIT has been answered: the mount is live.
    let onReady: @Sendable () -> Void
    /// Whether any entry has extended attributes (otherwise getxattr stays unimplemented).
    let hasXattrs: Bool
    /// Whether any entry carries a POSIX ACL, which the kernel then enforces (FUSE_CAP_POSIX_ACL).
    let hasACLs: Bool
    private let subdirectoryCounts: [Int: Int]
    private let linkCounts: [Int: Int]
    private let root: Entry
    private let totalBytes: UInt64

    /// The directory served as the mount's root (nil: the volume's root).
    let top: Int?

    init(reader: VolumeReader, logger: Logger, trace: Bool, top: Int? = nil, uid: uid_t? = nil, gid: gid_t? = nil,
         onReady: @escaping @Sendable () -> Void) {
        self.reader = reader
        self.top = top
        self.logger = logger
        self.trace = trace
        self.onReady = onReady
        let v1 = reader.version == .v1
        uidMap = uid ?? (v1 ? getuid() : nil)
        gidMap = gid ?? (v1 ? getgid() : nil)
        var counts: [Int: Int] = [:]
        var links: [Int: Int] = [:]
        var total: UInt64 = 0
        var xattrs = false, acls = false
        for e in reader.entries {
            if e.isDirectory {
                let parent = Paths.parentIndex(of: e.path, in: reader)
                counts[parent, default: 0] += 1
            }
            if let first = e.linkOf { links[first, default: 1] += 1 } else { total += e.size }
            if !e.xattrs.isEmpty {
                xattrs = true
                acls = acls || e.xattrs.contains { $0.name.starts(with: Array("system.posix_acl_".utf8)) }
            }
        }
        root = reader.metadata.rootEntry
        hasXattrs = xattrs || !root.xattrs.isEmpty
        hasACLs = acls || root.xattrs.contains { $0.name.starts(with: Array("system.posix_acl_".utf8)) }
        subdirectoryCounts = counts
        linkCounts = links
        totalBytes = total
    }

    static let rootInode: fuse_ino_t = 1

    /// The inode of an entry: a hard link has its first path's; the served directory is the root.
    func inode(_ index: Int?) -> fuse_ino_t {
        if index == top { return MountedVolume.rootInode }
        return index.map { fuse_ino_t((reader.entries[$0].linkOf ?? $0) + 2) } ?? MountedVolume.rootInode
    }

    /// The served directory for the root inode (nil: the volume's root); throws ENOENT for an
    /// inode that does not exist.
    func index(_ ino: fuse_ino_t) throws(Errno) -> Int? {
        if ino == MountedVolume.rootInode { return top }
        guard ino >= 2, ino - 2 < UInt64(reader.entries.count) else { throw Errno(ENOENT) }
        return Int(ino - 2)
    }

    func entry(_ index: Int?) -> Entry { index.map { reader.entries[$0] } ?? root }

    /// The parent directory of a directory; the served root is its own parent.
    func parent(of dir: Int?) -> Int? {
        guard let dir, dir != top else { return dir }
        let p = Paths.parentIndex(of: reader.entries[dir].path, in: reader)
        return p < 0 ? nil : p
    }

    func attributes(_ index: Int?) -> stat {
        var st = stat()
        let e = entry(index)
        st.st_ino = __ino_t(inode(index))
        st.st_uid = uidMap ?? e.uid
        st.st_gid = gidMap ?? e.gid
        st.st_blksize = 65536
        let time = timespec(tv_sec: Int(e.mtimeSeconds), tv_nsec: Int(e.mtimeNanoseconds))
        st.st_mtim = time
        st.st_ctim = time
        st.st_atim = time
        switch e.content {
        case .directory:
            st.st_mode = S_IFDIR | mode_t(e.mode)
            st.st_nlink = nlink_t(2 + (subdirectoryCounts[index ?? -1] ?? 0))
        case .symlink(let t):
            st.st_mode = S_IFLNK | 0o777
            st.st_nlink = 1
            st.st_size = off_t(t.count)
        case .file(let size, _, let p, _):
            st.st_mode = S_IFREG | mode_t(e.mode)
            st.st_nlink = nlink_t(linkCounts[e.linkOf ?? index!] ?? 1)
            st.st_size = off_t(size)
            // Holes take no room, as on the disk the volume came from.
            st.st_blocks = blkcnt_t((size - min(size, p?.holeBytes ?? 0) + 511) / 512)
            if let p { st.st_blksize = Int(p.chunkSize) }
        }
        return st
    }

    /// SEEK_DATA / SEEK_HOLE over the file's hole chunks; ENXIO at or past the end.
    func seek(_ index: Int, offset: UInt64, data: Bool) throws(Errno) -> UInt64 {
        let e = reader.entries[index]
        guard case .file(let size, _, let p, _) = e.content else { throw Errno(EINVAL) }
        guard offset < size else { throw Errno(ENXIO) }
        guard let next = (p?.holes ?? []).seek(from: offset, size: size, chunkSize: UInt64(p?.chunkSize ?? 1), data: data) else {
            throw Errno(ENXIO)
        }
        return next
    }

    func statfs() -> statvfs {
        var s = statvfs()
        s.f_bsize = 4096
        s.f_frsize = 4096
        s.f_blocks = fsblkcnt_t((totalBytes + 4095) / 4096)
        s.f_files = fsfilcnt_t(reader.entries.count + 1)
        s.f_namemax = 255
        s.f_flag = UInt(ST_RDONLY)
        return s
    }
}

extension Paths {
    /// Index of the parent directory entry of a volume path (-1 for the root).
    static func parentIndex(of path: String, in reader: VolumeReader) -> Int {
        guard let slash = path.lastIndex(of: "/") else { return -1 }
        return (try? reader.entryIndex(String(path[..<slash]))).flatMap { $0 } ?? -1
    }
}

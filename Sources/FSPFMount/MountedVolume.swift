import CFuse3
import FSPFCore
import FSPFCrypto
import FSPFSystem
import Glibc
import Logging

/// What the FUSE callbacks see: the verified reader plus the mapping between volume
/// entries and inode numbers (root = 1, entry i = i + 2). The volume is immutable while
/// mounted, so inodes, attributes and listings never change.
final class MountedVolume: @unchecked Sendable {
    let reader: VolumeReader
    let logger: Logger
    let trace: Bool
    let uid: uid_t
    let gid: gid_t
    /// Attribute and entry cache lifetime given to the kernel: long, nothing changes.
    let timeout: Double = 86_400
    /// Called once the kernel's INIT has been answered: the mount is live.
    let onReady: @Sendable () -> Void
    private let subdirectoryCounts: [Int: Int]
    private let rootTime: timespec
    private let totalBytes: UInt64

    init(reader: VolumeReader, logger: Logger, trace: Bool, onReady: @escaping @Sendable () -> Void) {
        self.reader = reader
        self.logger = logger
        self.trace = trace
        self.onReady = onReady
        uid = getuid()
        gid = getgid()
        var counts: [Int: Int] = [:]
        var newest = timespec(tv_sec: 0, tv_nsec: 0)
        var total: UInt64 = 0
        for e in reader.entries {
            if e.isDirectory {
                let parent = Paths.parentIndex(of: e.path, in: reader)
                counts[parent, default: 0] += 1
            }
            total += e.size
            if e.mtimeSeconds > newest.tv_sec { newest = timespec(tv_sec: Int(e.mtimeSeconds), tv_nsec: Int(e.mtimeNanoseconds)) }
        }
        subdirectoryCounts = counts
        rootTime = newest
        totalBytes = total
    }

    static let rootInode: fuse_ino_t = 1

    func inode(_ index: Int?) -> fuse_ino_t { index.map { fuse_ino_t($0 + 2) } ?? MountedVolume.rootInode }

    /// nil for the root; throws ENOENT for an inode that does not exist.
    func index(_ ino: fuse_ino_t) throws(Errno) -> Int? {
        if ino == MountedVolume.rootInode { return nil }
        guard ino >= 2, ino - 2 < UInt64(reader.entries.count) else { throw Errno(ENOENT) }
        return Int(ino - 2)
    }

    func entry(_ index: Int?) -> Entry? { index.map { reader.entries[$0] } }

    func attributes(_ index: Int?) -> stat {
        var st = stat()
        st.st_ino = __ino_t(inode(index))
        st.st_uid = uid
        st.st_gid = gid
        st.st_blksize = 65536
        guard let e = entry(index) else {
            st.st_mode = S_IFDIR | 0o755
            st.st_nlink = nlink_t(2 + (subdirectoryCounts[-1] ?? 0))
            st.st_mtim = rootTime
            st.st_ctim = rootTime
            st.st_atim = rootTime
            return st
        }
        let time = timespec(tv_sec: Int(e.mtimeSeconds), tv_nsec: Int(e.mtimeNanoseconds))
        st.st_mtim = time
        st.st_ctim = time
        st.st_atim = time
        switch e.content {
        case .directory:
            st.st_mode = S_IFDIR | mode_t(e.mode)
            st.st_nlink = nlink_t(2 + (subdirectoryCounts[index!] ?? 0))
        case .symlink(let t):
            st.st_mode = S_IFLNK | 0o777
            st.st_nlink = 1
            st.st_size = off_t(t.count)
        case .file(let size, _, let p, _):
            st.st_mode = S_IFREG | mode_t(e.mode)
            st.st_nlink = 1
            st.st_size = off_t(size)
            st.st_blocks = blkcnt_t((size + 511) / 512)
            if let p { st.st_blksize = Int(p.chunkSize) }
        }
        return st
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

/// An errno value thrown inside callbacks and answered with fuse_reply_err.
struct Errno: Error {
    let code: Int32
    init(_ code: Int32) { self.code = code }
}

extension Paths {
    /// Index of the parent directory entry of a volume path (-1 for the root).
    static func parentIndex(of path: String, in reader: VolumeReader) -> Int {
        guard let slash = path.lastIndex(of: "/") else { return -1 }
        return (try? reader.entryIndex(String(path[..<slash]))).flatMap { $0 } ?? -1
    }
}

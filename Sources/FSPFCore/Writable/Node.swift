import Dispatch
import FSPFCrypto
import FSPFSystem
import Glibc

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

import CLinux
import Glibc

extension FileDescriptor {
    /// The byte ranges of [0, size) that hold data, from SEEK_DATA/SEEK_HOLE: what is not listed
    /// is a hole. One range covering everything where the file system cannot say.
    public func dataExtents(size: UInt64) throws -> [Range<UInt64>] {
        guard size > 0 else { return [] }
        var out: [Range<UInt64>] = []
        var at: UInt64 = 0
        while at < size {
            let data = lseek(fd, off_t(at), FSPF_SEEK_DATA)
            if data < 0 {
                if errno == ENXIO { break }  // no data from here to the end
                if errno == EINVAL || errno == EOPNOTSUPP { return [0..<size] }
                throw FSPFError.io(path: path, operation: "lseek", errno: errno)
            }
            let start = UInt64(data)
            guard start < size else { break }
            let hole = lseek(fd, data, FSPF_SEEK_HOLE)
            guard hole >= 0 else { throw FSPFError.io(path: path, operation: "lseek", errno: errno) }
            let end = min(UInt64(hole), size)
            if end > start { out.append(start..<end) }
            at = max(end, start + 1)
        }
        return out
    }
}

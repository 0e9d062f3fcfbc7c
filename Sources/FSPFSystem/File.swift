import CLinux
import Glibc

/// An open file descriptor that closes itself. pread/pwrite at explicit offsets only, so one
/// descriptor is safely shared by many threads.
public final class FileDescriptor: @unchecked Sendable {
    public let fd: Int32
    public let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { Glibc.close(fd) }

    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o600) throws -> FileDescriptor {
        let fd = try syscall("open", path: path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return FileDescriptor(fd: fd, path: path)
    }

    /// An anonymous file in memory (memfd): scratch space that never touches a file system.
    public static func anonymous(_ name: String) throws -> FileDescriptor {
        FileDescriptor(fd: try syscall("memfd_create", path: name) { fspf_memfd(name) }, path: name)
    }

    public static func openForReading(_ path: String) throws -> FileDescriptor {
        try open(path, O_RDONLY | O_NOFOLLOW)
    }

    /// Opens the regular file `path` relative to this directory descriptor (absolute paths ignore
    /// it). Lets a reader keep using a directory after something is mounted over it. A relative
    /// path may not pass through any symbolic link or leave the directory (openat2, else one
    /// component at a time with O_NOFOLLOW); anything but a regular file (a FIFO that would block
    /// every reader, a device) is refused with EIO without waiting on it.
    public func openForReading(relative path: String) throws -> FileDescriptor {
        let flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
        let fd: Int32
        if path.hasPrefix("/") {
            fd = try syscall("open", path: path) { openat(self.fd, path, flags) }
        } else {
            fd = try syscall("open", path: path) {
                let r = fspf_openat_no_symlinks(self.fd, path, flags, 0)
                return r == -1 && errno == ENOSYS ? FileDescriptor.openComponents(self.fd, path, flags) : r
            }
        }
        let file = FileDescriptor(fd: fd, path: path)
        guard (try file.status().st_mode & S_IFMT) == S_IFREG else {
            throw FSPFError.io(path: path, operation: "open (not a regular file)", errno: EIO)
        }
        return file
    }

    /// openat one component at a time, none followed if it is a symbolic link (kernels without openat2).
    private static func openComponents(_ dir: Int32, _ path: String, _ flags: Int32) -> Int32 {
        let parts = path.split(separator: "/").map(String.init)
        guard !parts.isEmpty, !parts.contains("..") else { errno = EXDEV; return -1 }
        var current = dir
        for (i, part) in parts.enumerated() {
            let last = i == parts.count - 1
            let next = openat(current, part, last ? flags : O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let saved = errno
            if current != dir { close(current) }
            guard next >= 0 else { errno = saved; return -1 }
            current = next
        }
        return current
    }

    /// Reads until `buffer` is full or end of file; returns the bytes read. Nothing lies beyond
    /// off_t's range, so an offset there reads as end of file (libfspf passes callers' offsets).
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        guard offset < UInt64(off_t.max) else { return 0 }
        let count = Int(min(UInt64(buffer.count), UInt64(off_t.max) - offset))
        var done = 0
        while done < count {
            let n = try syscall("read", path: path) {
                Glibc.pread(fd, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard offset <= UInt64(off_t.max) - UInt64(buffer.count) else {
            throw FSPFError.io(path: path, operation: "write", errno: EFBIG)
        }
        var done = 0
        while done < buffer.count {
            let n = try syscall("write", path: path) {
                Glibc.pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            }
            done += n
        }
    }

    /// The whole file, refusing more than `limit` bytes.
    /// Reads until end of file, so files whose size is not known in advance (/proc) work too.
    public func readAll(limit: Int = 1 << 31) throws -> [UInt8] {
        let size = Int(try status().st_size)
        guard size <= limit else { throw FSPFError.badInput(path: path, reason: "file too large (\(size) bytes)") }
        var bytes = [UInt8](repeating: 0, count: max(size + 1, 4096))
        var count = 0
        while true {
            if count == bytes.count {
                guard count <= limit else { throw FSPFError.badInput(path: path, reason: "file larger than \(limit) bytes") }
                bytes += [UInt8](repeating: 0, count: bytes.count)
            }
            let n = try bytes.withUnsafeMutableBytes { try read(into: UnsafeMutableRawBufferPointer(rebasing: $0[count...]), at: UInt64(count)) }
            if n == 0 { break }
            count += n
        }
        guard count <= limit else { throw FSPFError.badInput(path: path, reason: "file larger than \(limit) bytes") }
        return Array(bytes[0..<count])
    }

    public func status() throws -> stat {
        var st = stat()
        try syscall("stat", path: path) { fstat(fd, &st) }
        return st
    }

    public func truncate(to size: UInt64) throws {
        try syscall("truncate", path: path) { ftruncate(fd, off_t(size)) }
    }

    /// syncfs: everything written to this descriptor's file system reaches the disk.
    public func syncFileSystem() throws {
        _ = try syscall("syncfs", path: path) { fspf_syncfs(fd) }
    }

    public func sync() throws {
        try syscall("fsync", path: path) { fsync(fd) }
    }
}

/// Path-level operations, each reporting the path on failure.
public enum FileSystem {
    public static func lstatus(_ path: String) throws -> stat {
        var st = stat()
        try syscall("stat", path: path) { lstat(path, &st) }
        return st
    }

    public static func status(_ path: String) -> stat? {
        var st = stat()
        return fstatat(AT_FDCWD, path, &st, 0) == 0 ? st : nil
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        guard let st = status(path) else { return false }
        return st.st_mode & S_IFMT == S_IFDIR
    }

    public static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws {
        if Glibc.mkdir(path, mode) == 0 { return }
        let e = errno
        if e == EEXIST && isDirectory(path) { return }
        throw FSPFError.io(path: path, operation: "mkdir", errno: e)
    }

    /// The path with every symbolic link resolved (realpath(3)), or nil if it does not exist.
    public static func resolved(_ path: String) -> String? {
        guard let r = realpath(path, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }

    public static func makeDirectories(_ path: String) throws {
        if path.isEmpty || isDirectory(path) { return }
        let parent = Paths.parent(path)
        if parent != path { try makeDirectories(parent) }
        try makeDirectory(path)
    }

    public static func rename(_ from: String, _ to: String) throws {
        try syscall("rename to \(to)", path: from) { Glibc.rename(from, to) }
    }

    public static func readLink(_ path: String) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = try syscall("readlink", path: path) {
            buffer.withUnsafeMutableBytes { Glibc.readlink(path, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }
        }
        return Array(buffer[0..<n])
    }

    /// Names in a directory (without "." and ".."), as raw bytes.
    public static func list(_ path: String) throws -> [[UInt8]] {
        try Directory.open(path).list()
    }

    /// Removes a tree, following no link in it (`Directory.removeTree`).
    public static func removeTree(_ path: String) {
        let (parent, name) = Paths.split(path)
        guard !name.isEmpty, let dir = try? Directory.open(parent) else { return }
        dir.removeTree(name)
    }

    /// Calls `body` with the path and status of every non-directory below `dir`, descending
    /// through descriptors into real directories only (`Directory.forEachFile`).
    public static func forEachFile(below dir: String, _ body: (String, stat) -> Void) {
        (try? Directory.open(dir))?.forEachFile { d, name, st in body(d.shown(name), st) }
    }

    /// The soft limit on open descriptors raised to the hard one (often 1024 → far more): every
    /// key server connection and every file a read-write mount is writing holds one. Returns it.
    @discardableResult
    public static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(min(limit.rlim_cur, 1 << 20))
    }

    /// sync(2): every written object reaches the disk before the metadata naming them is
    /// committed (one call instead of an fsync per object).
    public static func flushAll() {
        Glibc.sync()
    }

    /// Whether `candidate` is a temporary file `writeAtomically(path, …)` creates: what a write
    /// of `path` stopped by SIGKILL or power loss leaves beside it.
    public static func isAtomicWriteLeftover(_ candidate: String, of path: String) -> Bool {
        guard candidate.hasPrefix(path + ".tmp-") else { return false }
        let suffix = candidate.dropFirst(path.count + 5)
        return !suffix.isEmpty && suffix.count <= 16 && suffix.allSatisfy(\.isHexDigit)
    }

    /// Writes `bytes` to `path` atomically (`Directory.writeAtomically` in the directory the
    /// path names): with `replacing`, whatever is at `path` (a link included, never followed) is
    /// replaced; without, an existing `path` is `.fileExists` and stays as it is.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644, replacing: Bool) throws {
        let (parent, name) = Paths.split(path)
        try Directory.open(parent).writeAtomically(name, bytes, mode: mode, replacing: replacing)
    }

    /// A file fspf makes for its user (a key, a tag file, a draft): written atomically, new
    /// unless `replacing`; an existing file or link at `path` is `.fileExists` naming `flag`, the
    /// option that replaces it (a key file overwritten would lose every volume it opens).
    public static func writeForUser(_ path: String, _ bytes: [UInt8], mode: mode_t, replacing: Bool, flag: String) throws {
        do { try writeAtomically(path, bytes, mode: mode, replacing: replacing) } catch FSPFError.fileExists(let p, _) {
            throw FSPFError.fileExists(path: p, hint: flag)
        }
    }

    public static func readAll(_ path: String, limit: Int = 1 << 31) throws -> [UInt8] {
        try FileDescriptor.open(path, O_RDONLY).readAll(limit: limit)
    }
}

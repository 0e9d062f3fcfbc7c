import CLinux
import Glibc

/// A directory held by its descriptor, through which every change below it is made: openat,
/// mkdirat, unlinkat, renameat, linkat and symlinkat relative to the descriptor, no symbolic
/// link followed and no `..` taken at any component below it. Storage is the attacker's: a
/// component swapped for a link to /etc must turn a change into an error, never into a change
/// of /etc (docs/SECURITY.md, "Links below a volume").
///
/// The directory itself is opened by the path its user gave (links in that path are the user's
/// own naming), or below another `Directory`, where a link or a non-directory is refused.
public final class Directory: Sendable {
    public let descriptor: FileDescriptor
    /// For messages: as its user named it (or the parent's path and the components below it).
    public let path: String

    private init(_ descriptor: FileDescriptor, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    private var fd: Int32 { descriptor.fd }

    /// The directory at `path`, as the user named it.
    public static func open(_ path: String) throws -> Directory {
        Directory(try FileDescriptor.open(path, O_RDONLY | O_DIRECTORY), path: path)
    }

    /// The same directory on a descriptor of its own: what holds it does not hold this one's
    /// flock (a lock belongs to an open file, not to the directory).
    public func reopened() throws -> Directory {
        let r = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard r >= 0 else { throw FSPFError.io(path: path, operation: "open", errno: errno) }
        return Directory(FileDescriptor(fd: r, path: path), path: path)
    }

    /// `name` below this directory, for messages.
    public func shown(_ name: String) -> String { name.isEmpty || name == "." ? path : Paths.join(path, name) }

    // MARK: Directories below

    /// The directory `relative` below this one, every component a real directory. With
    /// `create`, missing components are made (`mode`); a link or a non-directory on the way is
    /// refused with a line naming it.
    public func subdirectory(_ relative: String, create: Bool = false, mode: mode_t = 0o755) throws -> Directory {
        let parts = try Self.components(relative)
        if parts.isEmpty { return self }
        if !create {
            let flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
            let r = fspf_openat_no_symlinks(fd, relative, flags, 0)
            if r >= 0 { return Directory(FileDescriptor(fd: r, path: shown(relative)), path: shown(relative)) }
            // Where it failed is told component by component (and kernels without openat2 go that way).
            if errno == ENOENT { throw FSPFError.io(path: shown(relative), operation: "open", errno: ENOENT) }
        }
        var current = self
        for part in parts {
            current = try current.child(part, create: create, mode: mode)
        }
        return current
    }

    /// The directory `name` (one component) in this one.
    private func child(_ name: String, create: Bool, mode: mode_t) throws -> Directory {
        let shownPath = shown(name)
        if create, mkdirat(fd, name, mode) != 0, errno != EEXIST {
            throw FSPFError.io(path: shownPath, operation: "mkdir", errno: errno)
        }
        let r = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard r >= 0 else {
            let e = errno
            if e == ELOOP || e == ENOTDIR { throw refusal(name, expected: "a directory") }
            throw FSPFError.io(path: shownPath, operation: "open", errno: e)
        }
        return Directory(FileDescriptor(fd: r, path: shownPath), path: shownPath)
    }

    /// What is said of `name` where `expected` (a directory or a file of ours) was expected and
    /// something else is there.
    private func refusal(_ name: String, expected: String) -> FSPFError {
        let what: String
        switch status(name).map({ $0.st_mode & S_IFMT }) {
        case S_IFLNK?: what = "a symbolic link"
        case S_IFDIR?: what = "a directory"
        case S_IFREG?: what = "a file"
        case nil: what = "gone"
        default: what = "a special file"
        }
        return .badInput(path: shown(name), reason: "\(what) where fspf expects \(expected) of its own: "
                         + "refused (nothing below \(path) is followed or replaced)")
    }

    /// `relative`'s components; "" and "." are this directory. `..` and absolute paths are refused.
    private static func components(_ relative: String) throws -> [String] {
        guard !relative.hasPrefix("/") else { throw FSPFError.usage("\(relative): not a relative path") }
        let parts = relative.split(separator: "/").map(String.init).filter { $0 != "." }
        guard !parts.contains("..") else { throw FSPFError.usage("\(relative): '..' is not allowed here") }
        return parts
    }

    /// The directory holding `relative` (reached as `subdirectory` does) and its last component.
    public func split(_ relative: String, create: Bool = false) throws -> (Directory, String) {
        let parts = try Self.components(relative)
        guard let last = parts.last else { throw FSPFError.usage("\(shown(relative)): a file name is needed") }
        let parent = parts.count == 1 ? self : try subdirectory(parts.dropLast().joined(separator: "/"), create: create)
        return (parent, last)
    }

    // MARK: Files

    /// Opens the file `relative` below this directory; the file itself is never a link (O_NOFOLLOW)
    /// and must be a regular file (a FIFO or device there is refused without blocking on it).
    /// With O_CREAT, `makingParents` makes missing directories on the way.
    public func openFile(_ relative: String, _ flags: Int32, mode: mode_t = 0o644, makingParents: Bool = false) throws -> FileDescriptor {
        let (dir, name) = try split(relative, create: makingParents)
        let r = openat(dir.fd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode)
        guard r >= 0 else {
            let e = errno
            if e == ELOOP { throw dir.refusal(name, expected: "a file") }
            throw FSPFError.io(path: dir.shown(name), operation: flags & O_CREAT != 0 ? "create" : "open", errno: e)
        }
        let file = FileDescriptor(fd: r, path: dir.shown(name))
        guard (try file.status().st_mode & S_IFMT) == S_IFREG else { throw dir.refusal(name, expected: "a file") }
        // Back to blocking I/O (O_NONBLOCK only kept the open itself from waiting).
        _ = fcntl(r, F_SETFL, fcntl(r, F_GETFL) & ~O_NONBLOCK)
        return file
    }

    /// lstat of `relative` below this directory (no link followed); nil if it is not there.
    public func status(_ relative: String) -> stat? {
        guard let (dir, name) = try? split(relative) else { return relative.isEmpty ? (try? descriptor.status()) : nil }
        var st = stat()
        return fstatat(dir.fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
    }

    /// Names in this directory (without "." and ".."), as raw bytes.
    public func list() throws -> [[UInt8]] {
        // fdopendir takes the descriptor it is given: it gets its own.
        let own = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard own >= 0, let dir = fdopendir(own) else {
            let e = errno
            if own >= 0 { close(own) }
            throw FSPFError.io(path: path, operation: "opendir", errno: e)
        }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let ent = readdir(dir) else {
                if errno != 0 { throw FSPFError.io(path: path, operation: "readdir", errno: errno) }
                break
            }
            let name = withUnsafeBytes(of: ent.pointee.d_name) { raw -> [UInt8] in
                let bytes = raw.bindMemory(to: UInt8.self)
                return Array(bytes[0..<(bytes.firstIndex(of: 0) ?? bytes.count)])
            }
            if name == [0x2e] || name == [0x2e, 0x2e] { continue }
            names.append(name)
        }
        return names
    }

    /// Calls `body` with the directory holding it, the name and the status of every
    /// non-directory below this one (links included, as what they are), descending into real
    /// directories only.
    public func forEachFile(_ body: (Directory, String, stat) -> Void) {
        for raw in (try? list()) ?? [] {
            let name = String(decoding: raw, as: UTF8.self)
            guard Array(name.utf8) == raw, let st = status(name) else { continue }
            if st.st_mode & S_IFMT == S_IFDIR {
                (try? child(name, create: false, mode: 0))?.forEachFile(body)
            } else {
                body(self, name, st)
            }
        }
    }

    // MARK: Changes

    /// mkdirat: a new directory `name` here.
    public func makeDirectory(_ relative: String, mode: mode_t) throws {
        let (dir, name) = try split(relative)
        try syscall("mkdir", path: dir.shown(name)) { mkdirat(dir.fd, name, mode) }
    }

    /// symlinkat: a new link `relative` (below this directory) to `target`.
    public func makeSymlink(_ relative: String, target: [UInt8]) throws {
        let (dir, name) = try split(relative)
        let t = target.map { CChar(bitPattern: $0) } + [0]
        try syscall("symlink", path: dir.shown(name)) { symlinkat(t, dir.fd, name) }
    }

    /// linkat: `relative` (below this directory) becomes another name of `existing` (also below it).
    public func makeLink(_ relative: String, to existing: String) throws {
        let (from, a) = try split(existing), (to, b) = try split(relative)
        try syscall("link", path: to.shown(b)) { linkat(from.fd, a, to.fd, b, 0) }
    }

    /// unlinkat of the file or link `relative`; false if nothing was there. A directory is refused.
    @discardableResult
    public func removeFile(_ relative: String) throws -> Bool {
        let (dir, name) = try split(relative)
        if unlinkat(dir.fd, name, 0) == 0 { return true }
        if errno == ENOENT { return false }
        throw FSPFError.io(path: dir.shown(name), operation: "unlink", errno: errno)
    }

    /// Removes `name` and, if it is a directory, everything below it, without following any link
    /// (a link is removed itself). Best effort: what cannot be removed stays.
    public func removeTree(_ relative: String) {
        guard let (dir, name) = try? split(relative), let st = dir.status(name) else { return }
        if st.st_mode & S_IFMT == S_IFDIR, let below = try? dir.child(name, create: false, mode: 0) {
            for raw in (try? below.list()) ?? [] {
                below.removeTree(raw)
            }
            if unlinkat(dir.fd, name, AT_REMOVEDIR) == 0 || errno != ENOTDIR { return }
        }
        unlinkat(dir.fd, name, 0)
    }

    /// `removeTree` for a name that may not be UTF-8 (a listing's).
    private func removeTree(_ raw: [UInt8]) {
        let name = String(decoding: raw, as: UTF8.self)
        if Array(name.utf8) == raw { return removeTree(name) }
        // Not valid UTF-8: removed by its bytes (nothing of ours is called so, but a tree being
        // removed may hold anything).
        let c = raw.map { CChar(bitPattern: $0) } + [0]
        var st = stat()
        guard fstatat(fd, c, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            let r = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if r >= 0 {
                let below = Directory(FileDescriptor(fd: r, path: path), path: path)
                for n in (try? below.list()) ?? [] { below.removeTree(n) }
            }
            unlinkat(fd, c, AT_REMOVEDIR)
        } else {
            unlinkat(fd, c, 0)
        }
    }

    /// Removes the directories below this one that are empty once their own empty ones are gone.
    public func removeEmptyDirectories() {
        for raw in (try? list()) ?? [] {
            let name = String(decoding: raw, as: UTF8.self)
            guard Array(name.utf8) == raw, let st = status(name), st.st_mode & S_IFMT == S_IFDIR,
                  let below = try? child(name, create: false, mode: 0) else { continue }
            below.removeEmptyDirectories()
            unlinkat(fd, name, AT_REMOVEDIR)
        }
    }

    /// renameat of `name` here to `newName` in `target` (default: here). Without `replacing`,
    /// nothing at `newName` is replaced (renameat2 RENAME_NOREPLACE; a hard link and unlink
    /// where the file system lacks it): `.fileExists`.
    public func rename(_ relative: String, to newRelative: String, in target: Directory? = nil, replacing: Bool) throws {
        let (from, a) = try split(relative), (to, b) = try (target ?? self).split(newRelative)
        if replacing {
            try syscall("rename to \(to.shown(b))", path: from.shown(a)) { renameat(from.fd, a, to.fd, b) }
            return
        }
        if fspf_rename_noreplace(from.fd, a, to.fd, b) == 0 { return }
        var e = errno
        if e == EINVAL || e == ENOSYS {
            // No RENAME_NOREPLACE here: link() also refuses an existing name (files only).
            if linkat(from.fd, a, to.fd, b, 0) == 0 {
                unlinkat(from.fd, a, 0)
                return
            }
            e = errno
        }
        if e == EEXIST { throw FSPFError.fileExists(path: to.shown(b), hint: "") }
        throw FSPFError.io(path: from.shown(a), operation: "rename to \(to.shown(b))", errno: e)
    }

    /// Writes `name` in this directory atomically: a new temporary file with an unpredictable
    /// name (O_EXCL, O_NOFOLLOW: nobody can plant a link for the write to follow), fsync, rename,
    /// fsync of the directory. Without `replacing`, an existing `name` (a file, a link) is left
    /// as it is and the write fails with `.fileExists`.
    public func writeAtomically(_ name: String, _ bytes: [UInt8], mode: mode_t = 0o644, replacing: Bool) throws {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else { throw FSPFError.usage("\(shown(name)): not a file name") }
        if !replacing, status(name) != nil { throw FSPFError.fileExists(path: shown(name), hint: "") }
        var tmp = ""
        var created: FileDescriptor? = nil
        for _ in 0..<8 where created == nil {
            tmp = name + ".tmp-" + String(UInt64.random(in: .min ... .max), radix: 16)
            do {
                created = try openFile(tmp, O_WRONLY | O_CREAT | O_EXCL, mode: mode)
            } catch FSPFError.io(_, _, EEXIST) {
                continue
            }
        }
        guard let f = created else { throw FSPFError.io(path: shown(tmp), operation: "create", errno: EEXIST) }
        do {
            try bytes.withUnsafeBytes { (b) throws in try f.write(b, at: 0) }
            try f.sync()
            try rename(tmp, to: name, replacing: replacing)
            try sync()
        } catch {
            unlinkat(fd, tmp, 0)
            throw error
        }
    }

    /// fsync of the directory: names created, renamed or removed in it are durable.
    public func sync() throws { try descriptor.sync() }

    /// An exclusive flock on the directory, without waiting; false if another holds one.
    public func lockExclusively() -> Bool { flock(fd, LOCK_EX | LOCK_NB) == 0 }
}

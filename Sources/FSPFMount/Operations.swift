import CFuse3
import CLinux
import FSPFCore
import FSPFCrypto
import FSPFSystem
import Glibc
import Logging

/// The libfuse low-level callbacks. Each finds its MountedVolume through the request's user
/// data and answers exactly once. Every modifying operation answers EROFS.
enum Operations {
    static func table(for volume: MountedVolume) -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, conn in
            guard let userdata, let conn else { return }
            let v = Unmanaged<MountedVolume>.fromOpaque(userdata).takeUnretainedValue()
            var wanted = UInt32(FUSE_CAP_ASYNC_READ) | UInt32(FUSE_CAP_READDIRPLUS) | UInt32(FUSE_CAP_PARALLEL_DIROPS)
                | UInt32(FUSE_CAP_CACHE_SYMLINKS)
            // Stored ACLs are enforced by the kernel, as on the file system they came from.
            if v.hasACLs { wanted |= UInt32(FUSE_CAP_POSIX_ACL) }
            conn.pointee.want |= wanted & conn.pointee.capable
            conn.pointee.want &= ~UInt32(FUSE_CAP_READDIRPLUS_AUTO)  // always plus: one round trip per listing
            v.logger.debug("FUSE session initialised", metadata: ["max_read": "\(conn.pointee.max_read)",
                                                                   "max_readahead": "\(conn.pointee.max_readahead)"])
            v.onReady()
        }
        ops.lookup = { req, parent, name in
            Operations.reply(req) { v in
                let dir = try v.index(parent)
                if let d = dir, !v.reader.entries[d].isDirectory { throw Errno(ENOTDIR) }
                let len = strlen(name!)
                // No entry can have such a name (FUSE itself passes up to 1,024 bytes).
                guard len <= Int(NAME_MAX) else { throw Errno(ENAMETOOLONG) }
                let found = name!.withMemoryRebound(to: UInt8.self, capacity: len) {
                    v.reader.child(of: dir, named: UnsafeBufferPointer(start: $0, count: len))
                }
                if v.trace { v.logger.trace("lookup parent \(parent) \(String(cString: name!)) -> \(found.map { "\($0 + 2)" } ?? "ENOENT")") }
                guard let i = found else { throw Errno(ENOENT) }
                var e = Operations.entryParam(v, i)
                fuse_reply_entry(req, &e)
            }
        }
        ops.getattr = { req, ino, _ in
            Operations.reply(req) { v in
                var st = v.attributes(try v.index(ino))
                fuse_reply_attr(req, &st, v.timeout)
            }
        }
        ops.readlink = { req, ino in
            Operations.reply(req) { v in
                guard let i = try v.index(ino), case .symlink(let t) = v.reader.entries[i].content else { throw Errno(EINVAL) }
                let text = t + [0]
                text.withUnsafeBufferPointer { b in
                    b.withMemoryRebound(to: CChar.self) { _ = fuse_reply_readlink(req, $0.baseAddress) }
                }
            }
        }
        ops.open = { req, ino, fi in
            Operations.reply(req) { v in
                guard let i = try v.index(ino) else { throw Errno(EISDIR) }
                switch v.reader.entries[i].content {
                case .directory: throw Errno(EISDIR)
                case .symlink: throw Errno(ELOOP)
                case .file: break
                }
                let flags = fspf_fi_flags(fi)
                if flags & O_ACCMODE != O_RDONLY || flags & (O_TRUNC | O_APPEND | O_CREAT) != 0 { throw Errno(EROFS) }
                if v.trace { v.logger.trace("open \(v.reader.entries[i].path)") }
                if v.reader.entries[i].size == 0 {
                    // The kernel never reads an empty file: authenticate it here.
                    _ = try Operations.verified(v) { try v.reader.read(entry: i, offset: 0, into: ReplyBuffer.current(0)) }
                }
                fspf_fi_set_cached(fi)
                fuse_reply_open(req, fi)
            }
        }
        ops.read = { req, ino, size, off, _ in
            Operations.reply(req) { v in
                guard let i = try v.index(ino) else { throw Errno(EISDIR) }
                let buffer = ReplyBuffer.current(size)
                let n = try Operations.verified(v) { try v.reader.read(entry: i, offset: UInt64(max(0, off)), into: buffer) }
                if v.trace { v.logger.trace("read \(v.reader.entries[i].path) offset \(off) size \(size) -> \(n)") }
                fuse_reply_buf(req, buffer.baseAddress!.assumingMemoryBound(to: CChar.self), n)
            }
        }
        ops.opendir = { req, ino, fi in
            Operations.reply(req) { v in
                if let i = try v.index(ino), !v.reader.entries[i].isDirectory { throw Errno(ENOTDIR) }
                fspf_fi_set_cached(fi)
                fuse_reply_open(req, fi)
            }
        }
        ops.readdir = { req, ino, size, off, _ in
            Operations.reply(req) { v in try Operations.listDirectory(req, v, ino, size, off, plus: false) }
        }
        ops.readdirplus = { req, ino, size, off, _ in
            Operations.reply(req) { v in try Operations.listDirectory(req, v, ino, size, off, plus: true) }
        }
        ops.statfs = { req, _ in
            Operations.reply(req) { v in
                var s = v.statfs()
                fuse_reply_statfs(req, &s)
            }
        }
        ops.access = { req, ino, mask in
            Operations.reply(req) { v in
                _ = try v.index(ino)
                if mask & W_OK != 0 { throw Errno(EROFS) }
                fuse_reply_err(req, 0)
            }
        }
        // getxattr and listxattr only for a volume that stored extended attributes. Otherwise they
        // stay unimplemented: the kernel remembers ENOSYS and stops asking, where an ENODATA
        // answer would cost a round trip per file for every `ls -l` (which asks for ACLs and
        // security labels).
        if volume.hasXattrs {
            ops.getxattr = { req, ino, name, size in
                Operations.reply(req) { v in
                    let e = v.entry(try v.index(ino))
                    let wanted = Array(UnsafeBufferPointer(start: UnsafeRawPointer(name!).assumingMemoryBound(to: UInt8.self), count: strlen(name!)))
                    guard let x = e.xattrs.first(where: { $0.name == wanted }) else { throw Errno(ENODATA) }
                    try FUSEReplies.xattr(req, x.value, size)
                }
            }
            ops.listxattr = { req, ino, size in
                Operations.reply(req) { v in
                    try FUSEReplies.xattr(req, v.entry(try v.index(ino)).xattrs.flatMap { $0.name + [0] }, size)
                }
            }
        }
        ops.lseek = { req, ino, off, whence, _ in
            Operations.reply(req) { v in
                guard let i = try v.index(ino) else { throw Errno(EISDIR) }
                guard whence == FSPF_SEEK_DATA || whence == FSPF_SEEK_HOLE, off >= 0 else { throw Errno(EINVAL) }
                fuse_reply_lseek(req, off_t(try v.seek(i, offset: UInt64(off), data: whence == FSPF_SEEK_DATA)))
            }
        }
        // Read-only in every way, even if the kernel's `ro` were bypassed.
        ops.setattr = { req, _, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.mknod = { req, _, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.mkdir = { req, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.unlink = { req, _, _ in fuse_reply_err(req, EROFS) }
        ops.rmdir = { req, _, _ in fuse_reply_err(req, EROFS) }
        ops.symlink = { req, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.rename = { req, _, _, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.link = { req, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.write = { req, _, _, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.create = { req, _, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.setxattr = { req, _, _, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.removexattr = { req, _, _ in fuse_reply_err(req, EROFS) }
        ops.fallocate = { req, _, _, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.copy_file_range = { req, _, _, _, _, _, _, _, _ in fuse_reply_err(req, EROFS) }
        return ops
    }

    /// A read from the volume: a failed verification is logged (one line naming the file and
    /// chunk) and answered EIO; the other files keep working.
    private static func verified<T>(_ v: MountedVolume, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as FSPFError {
            v.logger.error("\(e.description)")
            throw Errno(EIO)
        }
    }

    private static func reply(_ req: fuse_req_t?, _ body: (MountedVolume) throws -> Void) {
        FUSEReplies.run(req, MountedVolume.self, logger: \.logger, body)
    }

    private static func entryParam(_ v: MountedVolume, _ i: Int?) -> fuse_entry_param {
        var e = fuse_entry_param()
        e.ino = v.inode(i)
        e.attr = v.attributes(i)
        e.attr_timeout = v.timeout
        e.entry_timeout = v.timeout
        return e
    }

    /// "." and ".." then the children, from offset `off` (the index of the next entry).
    private static func listDirectory(_ req: fuse_req_t?, _ v: MountedVolume, _ ino: fuse_ino_t, _ size: Int,
                                      _ off: off_t, plus: Bool) throws {
        let dir = try v.index(ino)
        if let d = dir, !v.reader.entries[d].isDirectory { throw Errno(ENOTDIR) }
        if v.trace { v.logger.trace("readdir\(plus ? "plus" : "") /\(dir.map { v.reader.entries[$0].path } ?? "") offset \(off)") }
        let children = v.reader.children(of: dir)
        let buffer = ReplyBuffer.current(size)
        let base = buffer.baseAddress!.assumingMemoryBound(to: CChar.self)
        var used = 0
        var position = Int(off)
        while position < children.count + 2 {
            let name: String
            var target: Int?
            var isDotEntry = false
            switch position {
            case 0: name = "."; target = dir; isDotEntry = true
            case 1:
                name = ".."
                target = v.parent(of: dir)
                isDotEntry = true
            default:
                target = children[position - 2]
                name = Paths.lastComponent(v.reader.entries[target!].path)
            }
            let needed: Int = name.withCString { cname in
                if plus {
                    var e = entryParam(v, target)
                    if isDotEntry { e.ino = v.inode(target) }  // the kernel takes no lookup reference for dots
                    return fuse_add_direntry_plus(req, base + used, size - used, cname, &e, off_t(position + 1))
                } else {
                    var st = v.attributes(target)
                    return fuse_add_direntry(req, base + used, size - used, cname, &st, off_t(position + 1))
                }
            }
            if needed > size - used { break }
            used += needed
            position += 1
        }
        fuse_reply_buf(req, base, used)
    }
}

/// One reply buffer per FUSE worker thread, reused for every request: no allocation on the
/// read path. Zeroed when it grows and when its thread ends (it held plaintext).
final class ReplyBuffer {
    private var storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 4096)

    deinit {
        Sodium.zero(storage)
        storage.deallocate()
    }

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { p in if let p { Unmanaged<ReplyBuffer>.fromOpaque(p).release() } }
        return k
    }()

    static func current(_ size: Int) -> UnsafeMutableRawBufferPointer {
        let holder: ReplyBuffer
        if let p = pthread_getspecific(key) {
            holder = Unmanaged<ReplyBuffer>.fromOpaque(p).takeUnretainedValue()
        } else {
            holder = ReplyBuffer()
            pthread_setspecific(key, Unmanaged.passRetained(holder).toOpaque())
        }
        if holder.storage.count < size {
            Sodium.zero(holder.storage)
            holder.storage.deallocate()
            holder.storage = .allocate(byteCount: max(size, 128 << 10), alignment: 4096)
        }
        return UnsafeMutableRawBufferPointer(rebasing: holder.storage[0..<size])
    }
}

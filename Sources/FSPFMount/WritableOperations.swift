import CFuse3
import CLinux
import FSPFCore
import FSPFCrypto
import FSPFProvisioning
import FSPFSystem
import Glibc
import Logging

/// The libfuse low-level callbacks of a read-write mount. Each answers exactly once; errors
/// become errnos: the volume's own (ENOENT, EEXIST, ENOTEMPTY, EROFS for read-only regions…),
/// the disk's (ENOSPC) and EIO for anything that failed verification (logged).
enum WritableOperations {
    static func table() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, conn in
            guard let userdata, let conn else { return }
            let m = Unmanaged<WritableMount>.fromOpaque(userdata).takeUnretainedValue()
            let wanted = UInt32(FUSE_CAP_ASYNC_READ) | UInt32(FUSE_CAP_READDIRPLUS) | UInt32(FUSE_CAP_CACHE_SYMLINKS)
            conn.pointee.want |= wanted & conn.pointee.capable
            conn.pointee.want &= ~UInt32(FUSE_CAP_READDIRPLUS_AUTO)
            // Writes of up to 1 MiB per request (the kernel's limit is 256 pages).
            conn.pointee.max_write = 1 << 20
            m.onReady()
        }
        ops.lookup = { req, parent, name in
            WritableOperations.reply(req) { m in
                var e = WritableOperations.entry(m, try m.volume.lookup(parent, WritableOperations.bytes(name)))
                fuse_reply_entry(req, &e)
            }
        }
        ops.forget = { req, ino, n in
            let m = Unmanaged<WritableMount>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
            m.volume.forget(ino, n)
            fuse_reply_none(req)
        }
        ops.forget_multi = { req, count, list in
            let m = Unmanaged<WritableMount>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
            for i in 0..<count { m.volume.forget(list![i].ino, list![i].nlookup) }
            fuse_reply_none(req)
        }
        ops.getattr = { req, ino, _ in
            WritableOperations.reply(req) { m in
                var st = try m.volume.attributes(ino)
                fuse_reply_attr(req, &st, m.timeout)
            }
        }
        ops.setattr = { req, ino, attr, toSet, _ in
            WritableOperations.reply(req) { m in
                let a = attr!.pointee
                var c = WritableVolume.AttributeChange()
                if toSet & FUSE_SET_ATTR_MODE != 0 { c.mode = UInt32(a.st_mode) & 0o7777 }
                if toSet & FUSE_SET_ATTR_UID != 0 { c.uid = a.st_uid }
                if toSet & FUSE_SET_ATTR_GID != 0 { c.gid = a.st_gid }
                if toSet & FUSE_SET_ATTR_SIZE != 0 {
                    guard a.st_size >= 0 else { throw Errno(EINVAL) }
                    c.size = UInt64(a.st_size)
                }
                let now = WritableVolume.now()
                if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 { c.atime = now } else if toSet & FUSE_SET_ATTR_ATIME != 0 { c.atime = a.st_atim }
                if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 { c.mtime = now } else if toSet & FUSE_SET_ATTR_MTIME != 0 { c.mtime = a.st_mtim }
                var st = try m.volume.setAttributes(ino, c)
                fuse_reply_attr(req, &st, m.timeout)
            }
        }
        ops.readlink = { req, ino in
            WritableOperations.reply(req) { m in
                let text = try m.volume.readLink(ino) + [0]
                text.withUnsafeBufferPointer { b in b.withMemoryRebound(to: CChar.self) { _ = fuse_reply_readlink(req, $0.baseAddress) } }
            }
        }
        ops.mknod = { req, parent, name, mode, _ in
            WritableOperations.reply(req) { m in
                // Regular files only: devices, FIFOs and sockets have no place in a volume.
                guard mode & S_IFMT == S_IFREG else { throw Errno(EPERM) }
                var e = WritableOperations.entry(m, try m.volume.makeFile(parent, WritableOperations.bytes(name), mode: UInt32(mode), caller: WritableOperations.caller(req)))
                fuse_reply_entry(req, &e)
            }
        }
        ops.mkdir = { req, parent, name, mode in
            WritableOperations.reply(req) { m in
                var e = WritableOperations.entry(m, try m.volume.makeDirectory(parent, WritableOperations.bytes(name), mode: UInt32(mode), caller: WritableOperations.caller(req)))
                fuse_reply_entry(req, &e)
            }
        }
        ops.symlink = { req, target, parent, name in
            WritableOperations.reply(req) { m in
                var e = WritableOperations.entry(m, try m.volume.makeSymlink(parent, WritableOperations.bytes(name), target: WritableOperations.bytes(target), caller: WritableOperations.caller(req)))
                fuse_reply_entry(req, &e)
            }
        }
        ops.unlink = { req, parent, name in
            WritableOperations.reply(req) { m in
                try m.volume.unlink(parent, WritableOperations.bytes(name))
                fuse_reply_err(req, 0)
            }
        }
        ops.rmdir = { req, parent, name in
            WritableOperations.reply(req) { m in
                try m.volume.removeDirectory(parent, WritableOperations.bytes(name))
                fuse_reply_err(req, 0)
            }
        }
        ops.rename = { req, parent, name, newParent, newName, flags in
            WritableOperations.reply(req) { m in
                try m.volume.rename(parent, WritableOperations.bytes(name), to: newParent, WritableOperations.bytes(newName), flags: UInt32(flags))
                fuse_reply_err(req, 0)
            }
        }
        // A volume stores no new hard links (EPERM, as file systems without them answer).
        ops.link = { req, _, _, _ in fuse_reply_err(req, EPERM) }
        ops.create = { req, parent, name, mode, fi in
            WritableOperations.reply(req) { m in
                var e = WritableOperations.entry(m, try m.volume.makeFile(parent, WritableOperations.bytes(name), mode: UInt32(mode), caller: WritableOperations.caller(req)))
                try m.volume.open(UInt64(e.ino), write: true)
                fuse_reply_create(req, &e, fi)
            }
        }
        ops.open = { req, ino, fi in
            WritableOperations.reply(req) { m in
                let flags = fspf_fi_flags(fi)
                try m.volume.open(ino, write: flags & O_ACCMODE != O_RDONLY, truncate: flags & O_TRUNC != 0)
                fuse_reply_open(req, fi)
            }
        }
        ops.read = { req, ino, size, off, _ in
            WritableOperations.reply(req) { m in
                let buffer = ReplyBuffer.current(size)
                let n = try m.volume.read(ino, at: UInt64(max(0, off)), into: buffer)
                fuse_reply_buf(req, buffer.baseAddress!.assumingMemoryBound(to: CChar.self), n)
            }
        }
        ops.write = { req, ino, data, size, off, _ in
            WritableOperations.reply(req) { m in
                guard off >= 0 else { throw Errno(EINVAL) }
                try m.volume.write(ino, at: UInt64(off), UnsafeRawBufferPointer(start: data, count: size))
                fuse_reply_write(req, size)
            }
        }
        ops.flush = { req, ino, _ in
            WritableOperations.reply(req) { m in
                try m.volume.flush(ino)
                fuse_reply_err(req, 0)
            }
        }
        ops.release = { req, ino, _ in
            WritableOperations.reply(req) { m in
                try m.volume.release(ino)
                fuse_reply_err(req, 0)
            }
        }
        ops.fsync = { req, ino, _, _ in
            WritableOperations.reply(req) { m in
                try m.volume.sync(ino)
                fuse_reply_err(req, 0)
            }
        }
        ops.opendir = { req, ino, fi in
            WritableOperations.reply(req) { m in
                fspf_fi_set_fh(fi, m.openListing(try m.volume.listing(ino)))
                fuse_reply_open(req, fi)
            }
        }
        ops.readdir = { req, ino, size, off, fi in
            WritableOperations.reply(req) { m in try WritableOperations.listDirectory(req, m, ino, fspf_fi_fh(fi), size, off, plus: false) }
        }
        ops.readdirplus = { req, ino, size, off, fi in
            WritableOperations.reply(req) { m in try WritableOperations.listDirectory(req, m, ino, fspf_fi_fh(fi), size, off, plus: true) }
        }
        ops.releasedir = { req, _, fi in
            let m = Unmanaged<WritableMount>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
            m.closeListing(fspf_fi_fh(fi))
            fuse_reply_err(req, 0)
        }
        ops.fsyncdir = { req, _, _, _ in fuse_reply_err(req, 0) }
        ops.statfs = { req, _ in
            WritableOperations.reply(req) { m in
                var s = m.volume.statistics()
                fuse_reply_statfs(req, &s)
            }
        }
        ops.getxattr = { req, ino, name, size in
            WritableOperations.reply(req) { m in
                let wanted = WritableOperations.bytes(name)
                if ino == WritableVolume.rootInode && WritableMount.requests.contains(wanted) {
                    // Only the daemon's user or root may ask.
                    let ctx = fuse_req_ctx(req)!.pointee
                    guard ctx.uid == 0 || ctx.uid == getuid() else { throw Errno(EACCES) }
                    let answer: String
                    switch wanted {
                    case WritableMount.sealAttribute, WritableMount.finalAttribute:
                        let final = wanted == WritableMount.finalAttribute
                        let tag: VolumeTag
                        do { tag = try m.seal(reason: final ? "fspf seal --unmount" : "request", final: final) } catch is WritableMount.Unrecorded {
                            throw Errno(EREMOTEIO)
                        }
                        answer = Hex.encode(tag.full) + (final ? " \(getpid())" : "")
                    case WritableMount.thawAttribute:
                        m.volume.thaw()
                        answer = Hex.encode(m.volume.tag.full)
                    default: answer = Hex.encode(m.volume.tag.full)
                    }
                    try FUSEReplies.xattr(req, Array(answer.utf8), size)
                    return
                }
                try FUSEReplies.xattr(req, try m.volume.extendedAttribute(ino, wanted), size)
            }
        }
        ops.listxattr = { req, ino, size in
            WritableOperations.reply(req) { m in try FUSEReplies.xattr(req, try m.volume.extendedAttributeNames(ino), size) }
        }
        ops.setxattr = { req, ino, name, value, size, flags in
            WritableOperations.reply(req) { m in
                let n = WritableOperations.bytes(name)
                guard !WritableMount.requests.contains(n) else { throw Errno(EPERM) }
                try m.volume.setExtendedAttribute(ino, n, Array(UnsafeRawBufferPointer(start: value, count: size)),
                                                  create: Int(flags) & XATTR_CREATE != 0, replace: Int(flags) & XATTR_REPLACE != 0)
                fuse_reply_err(req, 0)
            }
        }
        ops.removexattr = { req, ino, name in
            WritableOperations.reply(req) { m in
                try m.volume.removeExtendedAttribute(ino, WritableOperations.bytes(name))
                fuse_reply_err(req, 0)
            }
        }
        ops.lseek = { req, ino, off, whence, _ in
            WritableOperations.reply(req) { m in
                guard whence == FSPF_SEEK_DATA || whence == FSPF_SEEK_HOLE, off >= 0 else { throw Errno(EINVAL) }
                fuse_reply_lseek(req, off_t(try m.volume.seek(ino, offset: UInt64(off), data: whence == FSPF_SEEK_DATA)))
            }
        }
        // Preallocation has no meaning for encrypted chunks written later: posix_fallocate then
        // writes zeros itself.
        ops.fallocate = { req, _, _, _, _, _ in fuse_reply_err(req, EOPNOTSUPP) }
        return ops
    }

    private static func bytes(_ name: UnsafePointer<CChar>?) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: name!, count: strlen(name!)))
    }

    private static func caller(_ req: fuse_req_t?) -> WritableVolume.Caller {
        let ctx = fuse_req_ctx(req)!.pointee
        return WritableVolume.Caller(uid: ctx.uid, gid: ctx.gid)
    }

    private static func entry(_ m: WritableMount, _ st: stat) -> fuse_entry_param {
        var e = fuse_entry_param()
        e.ino = fuse_ino_t(st.st_ino)
        e.attr = st
        e.attr_timeout = m.timeout
        e.entry_timeout = m.timeout
        return e
    }

    private static func reply(_ req: fuse_req_t?, _ body: (WritableMount) throws -> Void) {
        FUSEReplies.run(req, WritableMount.self, logger: \.logger, body)
    }

    /// "." and ".." then the listing taken at opendir, from offset `off`.
    private static func listDirectory(_ req: fuse_req_t?, _ m: WritableMount, _ ino: fuse_ino_t, _ handle: UInt64, _ size: Int,
                                      _ off: off_t, plus: Bool) throws {
        guard let children = m.listing(handle) else { throw Errno(EBADF) }
        let buffer = ReplyBuffer.current(size)
        let base = buffer.baseAddress!.assumingMemoryBound(to: CChar.self)
        var used = 0
        var position = Int(off)
        while position < children.count + 2 {
            let name: [UInt8]
            let target: UInt64
            switch position {
            case 0: name = Array(".".utf8); target = ino
            case 1: name = Array("..".utf8); target = (try? m.volume.parent(of: ino)) ?? ino
            default: (name, target) = children[position - 2]
            }
            // An entry removed since the listing was taken is left out.
            guard let st = try? m.volume.attributes(target) else { position += 1; continue }
            let needed: Int = (name + [0]).withUnsafeBufferPointer { b in
                b.withMemoryRebound(to: CChar.self) { cname in
                    if plus {
                        var e = entry(m, st)
                        return fuse_add_direntry_plus(req, base + used, size - used, cname.baseAddress, &e, off_t(position + 1))
                    }
                    var s = st
                    return fuse_add_direntry(req, base + used, size - used, cname.baseAddress, &s, off_t(position + 1))
                }
            }
            if needed > size - used { break }
            // readdirplus hands the kernel a reference, as lookup does ("." and ".." excepted).
            if plus && position >= 2 { m.volume.remember(target) }
            used += needed
            position += 1
        }
        fuse_reply_buf(req, base, used)
    }
}

import Dispatch
import FSPFCrypto
import FSPFSystem
import Glibc

/// A written volume's file contents: opens, reads and writes, through `WrittenContent`.
extension WritableVolume {
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
}

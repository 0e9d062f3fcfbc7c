import Dispatch
import Glibc
import Synchronization
import FSPFCrypto
import FSPFSystem

/// Writes a volume's plaintext tree to a new directory, atomically: built under a
/// temporary name and renamed, so an integrity failure leaves nothing behind. Hard links come
/// back as links and holes as holes; owners and every extended attribute are restored when
/// running as root, otherwise the `user.*` attributes only (the others need privileges).
public enum Exporter {
    /// Everything is made through descriptors of the output's parent and of the temporary
    /// directory (mode 0700) below it, nothing followed; the finished tree is renamed into
    /// place only if nothing has appeared at `output` meanwhile.
    public static func decrypt(_ reader: VolumeReader, to output: String,
                               threads: Int = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))) throws {
        let (parentPath, name) = Paths.split(output)
        let parent: Directory
        do { parent = try Directory.open(parentPath) } catch FSPFError.io(_, _, let e) where e == ENOENT || e == ENOTDIR {
            throw FSPFError.noInput(path: parentPath, reason: "output's parent directory does not exist")
        }
        // A new directory, never one that exists (empty or not): what is there is not replaced.
        guard parent.status(name) == nil else { throw FSPFError.fileExists(path: output, hint: "") }
        let stagingName = ".\(name).fspf-tmp-\(getpid())"
        let stagingPath = parent.shown(stagingName)
        parent.removeTree(stagingName)
        do {
            try parent.makeDirectory(stagingName, mode: 0o700)
            let staging = try parent.subdirectory(stagingName)
            let entries = reader.metadata.entries
            for e in entries where e.isDirectory { try staging.makeDirectory(e.path, mode: 0o700) }
            let next = Atomic<Int>(0)
            let failure = Locked<(any Error)?>(nil)
            DispatchQueue.concurrentPerform(iterations: max(1, min(threads, entries.count))) { _ in
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
                defer { Sodium.zero(buffer); buffer.deallocate() }
                while failure.withLock({ $0 == nil }) {
                    let i = next.add(1, ordering: .relaxed).oldValue
                    guard i < entries.count else { break }
                    do { try exportEntry(reader, i, staging: staging, buffer: buffer) } catch {
                        failure.withLock { if $0 == nil { $0 = error } }
                    }
                }
            }
            if let e = failure.withLock({ $0 }) { throw e }
            // Links once their first paths exist.
            for e in entries {
                guard let first = e.linkOf else { continue }
                try staging.makeLink(e.path, to: entries[first].path)
            }
            // Directory modes and times last (deepest first), once nothing more is written in them.
            for e in entries.reversed() where e.isDirectory {
                try finishAttributes(try staging.subdirectory(e.path).descriptor, e)
            }
            if let root = reader.metadata.root { try finishAttributes(staging.descriptor, root) }
            do { try parent.rename(stagingName, to: name, replacing: false) } catch FSPFError.fileExists {
                throw FSPFError.fileExists(path: output, hint: "")
            }
            try parent.sync()
        } catch {
            parent.removeTree(stagingName)
            // Name the user's output, not the temporary directory it was being written in.
            throw (error as? FSPFError)?.replacingPath(stagingPath, with: output) ?? error
        }
    }

    private static func exportEntry(_ reader: VolumeReader, _ i: Int, staging: Directory,
                                     buffer: UnsafeMutableRawBufferPointer) throws {
        if Interrupt.requested { throw FSPFError.interrupted }
        let e = reader.metadata.entries[i]
        guard e.linkOf == nil else { return }  // linked once its first path is written
        switch e.content {
        case .directory:
            return
        case .symlink(let t):
            try staging.makeSymlink(e.path, target: t)
            try finishSymlinkAttributes(staging, e)
        case .file(let size, _, let p, _):
            let out = try staging.openFile(e.path, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
            try out.truncate(to: size)
            var offset: UInt64 = 0
            while offset < size {
                // Hole chunks are skipped: the output keeps them as holes.
                if let p, p.isHole(offset / UInt64(p.chunkSize)) {
                    offset = (offset / UInt64(p.chunkSize) + 1) * UInt64(p.chunkSize)
                    continue
                }
                let wanted = p.map { Int(min(UInt64(buffer.count), UInt64($0.chunkSize) - offset % UInt64($0.chunkSize))) } ?? buffer.count
                let n = try reader.read(entry: i, offset: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<max(wanted, 1)]))
                guard n > 0 else { throw FSPFError.integrity(path: e.path, reason: "file ends early") }
                try out.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), at: offset)
                offset += UInt64(n)
            }
            try finishAttributes(out, e)
        }
    }

    /// Owner, extended attributes, mode and times of an open file or directory.
    private static func finishAttributes(_ f: FileDescriptor, _ e: Entry) throws {
        let root = geteuid() == 0
        if root { try syscall("chown", path: f.path) { fchown(f.fd, e.uid, e.gid) } }
        for x in e.xattrs where root || x.name.starts(with: Array("user.".utf8)) {
            try f.setExtendedAttribute(name: x.name, value: x.value)
        }
        try syscall("chmod", path: f.path) { fchmod(f.fd, mode_t(e.mode)) }
        try syscall("utimensat", path: f.path) { futimens(f.fd, times(e)) }
    }

    /// The same for a symbolic link, through the directory holding it (no mode: links have none).
    private static func finishSymlinkAttributes(_ staging: Directory, _ e: Entry) throws {
        let (dir, name) = try staging.split(e.path)
        let shown = dir.shown(name)
        let root = geteuid() == 0
        if root { try syscall("chown", path: shown) { fchownat(dir.descriptor.fd, name, e.uid, e.gid, AT_SYMLINK_NOFOLLOW) } }
        // The link itself (l-), named through the directory's descriptor.
        let viaDescriptor = "/proc/self/fd/\(dir.descriptor.fd)/" + name
        for x in e.xattrs where root || x.name.starts(with: Array("user.".utf8)) {
            do { try FileSystem.setExtendedAttribute(viaDescriptor, name: x.name, value: x.value) } catch let error as FSPFError {
                throw error.replacingPath(viaDescriptor, with: shown)
            }
        }
        try syscall("utimensat", path: shown) { utimensat(dir.descriptor.fd, name, times(e), AT_SYMLINK_NOFOLLOW) }
    }

    private static func times(_ e: Entry) -> [timespec] {
        let t = timespec(tv_sec: Int(e.mtimeSeconds), tv_nsec: Int(e.mtimeNanoseconds))
        return [t, t]
    }
}

/// What `fspf info` shows: the public header without a key, the contents with one.
public struct VolumeInfo: Sendable {
    public var metadataPath: String
    public var header: SealedMetadata.PublicHeader
    public var metadataBytes: Int
    public var objectFiles: Int
    public var objectBytes: UInt64

    public init(path: String) throws {
        metadataPath = try SealedMetadata.locate(path)
        let file = try FileSystem.readAll(metadataPath, limit: 1 << 30)
        header = try SealedMetadata.parseHeader(file, path: metadataPath)
        metadataBytes = file.count
        var files = 0
        var bytes: UInt64 = 0
        // The store as fspf made it: a link in its place (or below it) is not counted through.
        let store = try? Directory.open(Paths.parent(metadataPath)).subdirectory(ObjectStore.directoryName)
        store?.forEachFile { _, _, st in
            files += 1
            bytes += UInt64(st.st_size)
        }
        objectFiles = files
        objectBytes = bytes
    }

    public var publicLines: [String] {
        [
            "metadata:       \(metadataPath) (\(metadataBytes) bytes, format version \(header.version.rawValue))",
            "tag:            \(Hex.encode(header.tag.short))",
            header.version == .v1 ? "full tag:       none (format version 1: the tag binds only against those without the key)"
                                  : "full tag:       \(Hex.encode(header.tag.full))",
            "reproducible:   \(header.reproducible ? "yes" : "no")",
            Paths.lastComponent(metadataPath) == SealedMetadata.fileName
                ? "objects:        \(objectFiles) files, \(objectBytes) bytes in \(ObjectStore.directoryName)/"
                : "objects:        in the regions' directories (built step by step): counted with a key",
        ]
    }

    public static func contentLines(_ reader: VolumeReader) -> [String] {
        var files = 0, dirs = 0, links = 0
        var bytes: UInt64 = 0
        var byRegion: [RegionKind: (Int, UInt64)] = [:]
        for e in reader.entries {
            switch e.content {
            case .directory: dirs += 1
            case .symlink: links += 1
            case .file(let s, let r, _, _):
                files += 1
                bytes += s
                byRegion[r, default: (0, 0)].0 += 1
                byRegion[r, default: (0, 0)].1 += s
            }
        }
        var objects = 0, inline = 0
        var objectBytes: UInt64 = 0, inlineBytes = 0
        for e in reader.entries where e.linkOf == nil {
            guard case .file(_, _, let p?, _) = e.content else { continue }
            if let t = p.inlineTree { inline += 1; inlineBytes += t.count; continue }
            objects += 1
            objectBytes += (try? reader.storage.open(p.object).size()) ?? 0
        }
        var lines = ["contents:       \(files) files, \(dirs) directories, \(links) symlinks, \(bytes) bytes",
                     "objects:        \(objects) files, \(objectBytes) bytes on disk"
                     + (inline > 0 ? "; tag trees of \(inline) authenticated files in the metadata (\(inlineBytes) bytes)" : "")]
        for r in reader.metadata.regions {
            lines.append("region:         /\(r.path) \(r.kind.name)\(r.ephemeral ? ", ephemeral" : ""), chunk size \(r.chunkSize)")
        }
        for k in RegionKind.allCases { if let (n, b) = byRegion[k] { lines.append("  \(k.name): \(n) files, \(b) bytes") } }
        return lines
    }
}

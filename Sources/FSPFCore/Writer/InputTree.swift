import FSPFCrypto
import FSPFSystem
import Glibc

/// One item found under an input directory, before it is protected.
struct InputItem {
    enum Kind { case directory, file, symlink(target: [UInt8]) }
    /// Volume path.
    var path: String
    /// Path of the item on disk.
    var source: String
    /// Path relative to the source directory (where a plain copy goes below the output).
    var relative: String
    var kind: Kind
    var mode: UInt32
    var uid: UInt32 = 0
    var gid: UInt32 = 0
    var size: UInt64
    var mtimeSeconds: Int64
    var mtimeNanoseconds: UInt32
    var xattrs: [ExtendedAttribute] = []
    /// Device and inode of a regular file with more than one link (hard links are stored once).
    var inode: (dev: UInt64, ino: UInt64)? = nil
    /// The entry of the volume this item is read from (fspf upgrade).
    var volumeEntry: Int? = nil
}

/// What to leave out or drop while scanning.
struct ScanOptions {
    var excludes: [String] = []
    var xattrs = true
}

/// Walks an input directory without following symlinks. Symlinks are recorded (their
/// targets go into the sealed metadata); sockets, FIFOs and devices are refused, all of them
/// named in one error, unless excluded.
enum InputTree {
    /// The items below `directory`, and the directory's own attributes (the volume's root).
    static func scan(directory: String, prefix: String, options: ScanOptions) throws -> (items: [InputItem], root: InputItem) {
        // The directory named may be a symbolic link to one (/lib -> usr/lib); nothing below it is followed.
        guard let st = FileSystem.status(directory) else {
            throw FSPFError.noInput(path: directory, reason: "no such directory")
        }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            throw FSPFError.badInput(path: directory, reason: "not a directory")
        }
        var items: [InputItem] = []
        var special: [String] = []
        try walk(directory, relative: "", prefix: prefix, options: options, into: &items, special: &special)
        if !special.isEmpty {
            throw FSPFError.badInput(path: directory, reason: "\(special.count) special file\(special.count == 1 ? "" : "s") cannot be protected "
                                     + "(leave them out with --exclude): " + special.joined(separator: ", "))
        }
        let root = try item(path: prefix, source: directory, relative: "", kind: .directory, st, options)
        return (items, root)
    }

    /// The items of an existing volume, with their recorded attributes, for re-encryption;
    /// a hard link comes back as another path to the same inode.
    static func items(of reader: VolumeReader, prefix: String) throws -> (items: [InputItem], root: InputItem) {
        let linked = Set(reader.entries.compactMap(\.linkOf))
        func item(_ e: Entry, _ i: Int?) -> InputItem {
            var kind = InputItem.Kind.directory
            if case .symlink(let t) = e.content { kind = .symlink(target: t) }
            if case .file = e.content { kind = .file }
            var item = InputItem(path: Paths.join(prefix, e.path), source: reader.metadataPath + ":" + e.path, relative: e.path,
                                 kind: kind, mode: e.mode, uid: e.uid, gid: e.gid, size: kind.isFile ? e.size : 0,
                                 mtimeSeconds: e.mtimeSeconds, mtimeNanoseconds: e.mtimeNanoseconds, xattrs: e.xattrs)
            item.volumeEntry = i
            if let i, kind.isFile, e.linkOf != nil || linked.contains(i) {
                item.inode = (UInt64.max, UInt64(e.linkOf ?? i))
            }
            return item
        }
        return (reader.entries.enumerated().map { item($1, $0) }, item(reader.metadata.rootEntry, nil))
    }

    private static func walk(_ dir: String, relative: String, prefix: String, options: ScanOptions,
                             into items: inout [InputItem], special: inout [String]) throws {
        let names: [[UInt8]]
        do { names = try FileSystem.list(dir) } catch {
            if case .io(_, _, let e)? = error as? FSPFError, e == EACCES { throw FSPFError.noInput(path: dir, reason: "directory not readable") }
            throw error
        }
        for raw in names {
            let source = Paths.join(dir, String(decoding: raw, as: UTF8.self))
            guard let name = String(validating: raw, as: UTF8.self) else {
                throw FSPFError.badInput(path: source, reason: "file name is not valid UTF-8")
            }
            let rel = Paths.join(relative, name)
            if excluded(rel, name: name, options.excludes) { continue }
            let st = try FileSystem.lstatus(source)
            guard UInt64(st.st_size) <= Padding.maximumSize else {
                throw FSPFError.badInput(path: source, reason: "larger than the format's limit of 1 EiB")
            }
            let kind: InputItem.Kind
            switch st.st_mode & S_IFMT {
            case S_IFDIR: kind = .directory
            case S_IFREG: kind = .file
            case S_IFLNK: kind = .symlink(target: try FileSystem.readLink(source))
            default:
                special.append("\(source) (\(typeName(st.st_mode)))")
                continue
            }
            items.append(try item(path: Paths.join(prefix, rel), source: source, relative: rel, kind: kind, st, options))
            if case .directory = kind {
                guard access(source, R_OK | X_OK) == 0 else {
                    throw FSPFError.noInput(path: source, reason: "directory not readable")
                }
                try walk(source, relative: rel, prefix: prefix, options: options, into: &items, special: &special)
            }
        }
    }

    private static func item(path: String, source: String, relative: String, kind: InputItem.Kind, _ st: stat,
                             _ options: ScanOptions) throws -> InputItem {
        var item = InputItem(path: path, source: source, relative: relative, kind: kind,
                             mode: UInt32(st.st_mode) & 0o7777, uid: st.st_uid, gid: st.st_gid,
                             size: kind.isFile ? UInt64(st.st_size) : 0,
                             mtimeSeconds: Int64(st.st_mtim.tv_sec), mtimeNanoseconds: UInt32(st.st_mtim.tv_nsec))
        if options.xattrs {
            item.xattrs = try FileSystem.extendedAttributes(source).map { ExtendedAttribute(name: $0.name, value: $0.value) }
            if let big = item.xattrs.first(where: { $0.name.count > ExtendedAttribute.maximumNameLength
                                                     || $0.value.count > ExtendedAttribute.maximumValueLength }) {
                throw FSPFError.badInput(path: source, reason: "extended attribute \(String(decoding: big.name, as: UTF8.self)) is too large")
            }
        }
        if kind.isFile && st.st_nlink > 1 { item.inode = (UInt64(st.st_dev), UInt64(st.st_ino)) }
        return item
    }

    /// `--exclude` patterns (fnmatch): one with a '/' matches the path relative to the input
    /// (a leading '/' anchors it there), one without matches a name at any depth.
    static func excluded(_ relative: String, name: String, _ patterns: [String]) -> Bool {
        for p in patterns {
            if p.contains("/") {
                let anchored = p.hasPrefix("/") ? String(p.dropFirst()) : p
                let pattern = anchored.hasSuffix("/") ? String(anchored.dropLast()) : anchored
                if fnmatch(pattern, relative, FNM_PATHNAME) == 0 { return true }
            } else if fnmatch(p, name, 0) == 0 {
                return true
            }
        }
        return false
    }

    private static func typeName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: return "FIFO"
        case S_IFSOCK: return "socket"
        case S_IFCHR: return "character device"
        case S_IFBLK: return "block device"
        default: return "special file"
        }
    }
}

extension InputItem.Kind {
    var isFile: Bool { if case .file = self { return true } else { return false } }
}

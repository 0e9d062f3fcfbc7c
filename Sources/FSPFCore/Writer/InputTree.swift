import Glibc
import FSPFCrypto
import FSPFSystem

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
    var size: UInt64
    var mtimeSeconds: Int64
    var mtimeNanoseconds: UInt32
}

/// Walks an input directory without following symlinks. Symlinks are recorded (their
/// targets go into the sealed metadata); sockets, FIFOs and devices are refused.
enum InputTree {
    static func scan(directory: String, prefix: String) throws -> [InputItem] {
        let st: stat
        do { st = try FileSystem.lstatus(directory) } catch {
            throw FSPFError.noInput(path: directory, reason: "no such directory")
        }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            throw FSPFError.badInput(path: directory, reason: "not a directory")
        }
        var items: [InputItem] = []
        try walk(directory, relative: "", prefix: prefix, into: &items)
        return items
    }

    private static func walk(_ dir: String, relative: String, prefix: String, into items: inout [InputItem]) throws {
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
                throw FSPFError.badInput(path: source, reason: "special file (device, FIFO or socket) cannot be protected")
            }
            items.append(InputItem(path: Paths.join(prefix, rel), source: source, relative: rel, kind: kind,
                                   mode: UInt32(st.st_mode) & 0o7777,
                                   size: kind.isFile ? UInt64(st.st_size) : 0,
                                   mtimeSeconds: Int64(st.st_mtim.tv_sec), mtimeNanoseconds: UInt32(st.st_mtim.tv_nsec)))
            if case .directory = kind {
                guard access(source, R_OK | X_OK) == 0 else {
                    throw FSPFError.noInput(path: source, reason: "directory not readable")
                }
                try walk(source, relative: rel, prefix: prefix, into: &items)
            }
        }
    }
}

extension InputItem.Kind {
    var isFile: Bool { if case .file = self { return true } else { return false } }
}

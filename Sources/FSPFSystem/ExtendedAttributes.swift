import CLinux
import Glibc

extension FileSystem {
    /// One extended attribute of `path`, following a final symlink (fspf seal asks a mount's
    /// root); FSPFError.io with the errno if there is none or it is longer than `capacity`.
    public static func extendedAttribute(_ path: String, _ name: String, capacity: Int = 4096) throws -> [UInt8] {
        var value = [UInt8](repeating: 0, count: capacity)
        let n = value.withUnsafeMutableBytes { getxattr(path, name, $0.baseAddress, $0.count) }
        guard n >= 0 else { throw FSPFError.io(path: path, operation: "getxattr \(name)", errno: errno) }
        return Array(value[0..<n])
    }

    /// Every extended attribute of `path` (a final symlink not followed), sorted by name.
    /// Empty where the file system has none or does not support them.
    public static func extendedAttributes(_ path: String) throws -> [(name: [UInt8], value: [UInt8])] {
        var names = [CChar](repeating: 0, count: 1024)
        while true {
            let n = llistxattr(path, &names, names.count)
            if n >= 0 { names.removeSubrange(n...); break }
            switch errno {
            case ERANGE: names = [CChar](repeating: 0, count: names.count * 4)
            case ENOTSUP: return []
            default: throw FSPFError.io(path: path, operation: "listxattr", errno: errno)
            }
        }
        var out: [(name: [UInt8], value: [UInt8])] = []
        for raw in names.split(separator: 0) {
            let name = Array(raw) + [0]
            var value = [UInt8](repeating: 0, count: 256)
            while true {
                let n = name.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { lgetxattr(path, $0.baseAddress, &value, value.count) } }
                if n >= 0 { value.removeSubrange(n...); break }
                if errno == ERANGE { value = [UInt8](repeating: 0, count: value.count * 16); continue }
                if errno == ENODATA { value = []; break }  // removed meanwhile
                throw FSPFError.io(path: path, operation: "getxattr", errno: errno)
            }
            out.append((raw.map { UInt8(bitPattern: $0) }, value))
        }
        return out.sorted { $0.name.lexicographicallyPrecedes($1.name) }
    }

    /// Sets an extended attribute on `path` (a final symlink not followed).
    public static func setExtendedAttribute(_ path: String, name: [UInt8], value: [UInt8]) throws {
        let cname = name.map { CChar(bitPattern: $0) } + [0]
        try syscall("setxattr", path: path) { value.withUnsafeBytes { lsetxattr(path, cname, $0.baseAddress, $0.count, 0) } }
    }
}

extension FileDescriptor {
    /// Sets an extended attribute of the open file (fsetxattr).
    public func setExtendedAttribute(name: [UInt8], value: [UInt8]) throws {
        let cname = name.map { CChar(bitPattern: $0) } + [0]
        try syscall("setxattr", path: path) { value.withUnsafeBytes { fsetxattr(fd, cname, $0.baseAddress, $0.count, 0) } }
    }
}

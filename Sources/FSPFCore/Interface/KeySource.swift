import Glibc

/// Where a key comes from. The key itself is never accepted on a command line, where any
/// user could read it in /proc/<pid>/cmdline.
public enum KeySource: Sendable, Equatable {
    case file(String)
    case environment(String)
    case standardInput
    case descriptor(Int32)

    /// Loads and parses the key. An environment variable is removed once read.
    public func load() throws -> VolumeKeys {
        var bytes: [UInt8]
        switch self {
        case .file(let path):
            guard FileSystem.exists(path) else { throw FSPFError.noInput(path: path, reason: "key file does not exist") }
            bytes = try FileSystem.readAll(path, limit: 4096)
            return try VolumeKeys.parse(&bytes, source: path)
        case .environment(let name):
            guard let value = getenv(name) else {
                throw FSPFError.usage("environment variable \(name) is not set")
            }
            bytes = Array(String(cString: value).utf8)
            unsetenv(name)
            return try VolumeKeys.parse(&bytes, source: "$\(name)")
        case .standardInput:
            bytes = try KeySource.readAll(fd: 0, name: "standard input")
            return try VolumeKeys.parse(&bytes, source: "standard input")
        case .descriptor(let fd):
            bytes = try KeySource.readAll(fd: fd, name: "descriptor \(fd)")
            close(fd)
            return try VolumeKeys.parse(&bytes, source: "descriptor \(fd)")
        }
    }

    private static func readAll(fd: Int32, name: String) throws -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 512)
        while out.count <= 4096 {
            let n = try syscall("read", path: name) { buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) } }
            if n == 0 { break }
            out += buf[0..<n]
        }
        buf.withUnsafeMutableBytes { Sodium.zero($0) }
        return out
    }
}

/// Writes a key to a new file readable by its owner only.
public func writeKeyFile(_ path: String, _ keys: VolumeKeys) throws {
    var text = Array((keys.key.hex + "\n").utf8)
    defer { text.withUnsafeMutableBytes { Sodium.zero($0) } }
    unlink(path)
    let f = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
    try text.withUnsafeBytes { try f.write($0, at: 0) }
    try f.sync()
}

import Glibc

/// Pure string helpers for '/'-separated paths. Volume paths are relative, with no empty,
/// "." or ".." components; "" is the root.
public enum Paths {
    /// Byte order of two paths (the order the format keeps entries in), with memcmp: the
    /// generic `lexicographicallyPrecedes` dominated sorting a hundred thousand paths.
    public static func precedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        let n = min(a.count, b.count)
        let c = a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in n == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, n) } }
        return c != 0 ? c < 0 : a.count < b.count
    }

    /// `path` from the working directory, as given otherwise (no component is resolved).
    public static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX))
        guard getcwd(&buf, buf.count) != nil else { return path }
        return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } + "/" + path
    }

    /// `path` from the working directory with "." and ".." taken out lexically (no component
    /// is resolved, so a link is never followed to compute it).
    public static func normalized(_ path: String) -> String {
        let p = absolute(path)
        guard p.hasPrefix("/") else { return p }
        var parts: [Substring] = []
        for c in p.split(separator: "/") {
            if c == "." { continue }
            if c == ".." { _ = parts.popLast(); continue }
            parts.append(c)
        }
        return "/" + parts.joined(separator: "/")
    }

    public static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path.isEmpty ? path : "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    public static func join(_ a: String, _ b: String) -> String {
        if a.isEmpty || a == "." { return b }
        if b.isEmpty { return a }
        return a.hasSuffix("/") ? a + b : a + "/" + b
    }

    /// Normalises a user-given path inside a volume ("/a/./b/" -> "a/b", "/" or "." -> "").
    /// Rejects "..", which could only point outside the volume.
    public static func normalize(_ path: String) throws -> String {
        var parts: [Substring] = []
        for c in path.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == ".." { throw FSPFError.usage("\(path): '..' is not allowed in a volume path") }
            parts.append(c)
        }
        return parts.joined(separator: "/")
    }

    /// True when `path` equals `prefix` or lies below it (component-wise).
    public static func isWithin(_ path: String, _ prefix: String) -> Bool {
        if prefix.isEmpty { return true }
        if path == prefix { return true }
        return path.hasPrefix(prefix) && path.utf8.dropFirst(prefix.utf8.count).first == UInt8(ascii: "/")
    }

    /// The directory holding `path` and its last component, trailing slashes aside
    /// ("a/b/" -> ("a", "b"), "x" -> (".", "x"), "/x" -> ("/", "x")).
    public static func split(_ path: String) -> (parent: String, name: String) {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        return (parent(String(p)), p == "/" ? "" : lastComponent(String(p)))
    }

    public static func lastComponent(_ path: String) -> String {
        let trimmed = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        return trimmed.split(separator: "/").last.map(String.init) ?? trimmed
    }

    public static func firstComponent(_ path: String) -> String {
        path.split(separator: "/").first.map(String.init) ?? ""
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An errno value as an error (swift-system's `Errno`): what a file-system operation answers
/// (ENOENT, EEXIST, ENOTEMPTY…) when there is no path worth naming, as in FUSE callbacks.
/// Failures of system calls made on a path are `FSPFError.io`, which carries this code too.
public struct Errno: Error, Hashable, Sendable, CustomStringConvertible {
    public let code: Int32
    public init(_ code: Int32) { self.code = code }
    public var description: String { String(cString: strerror(code)) }
}

/// The one place system calls are made: retries EINTR and turns a -1 return into a typed
/// `FSPFError.io` naming the path and the operation (swift-nio's `syscall` pattern).
@inline(__always)
@discardableResult
public func syscall<T: FixedWidthInteger>(_ operation: @autoclosure () -> String, path: @autoclosure () -> String,
                                   _ body: () -> T) throws -> T {
    while true {
        let r = body()
        if r != -1 { return r }
        let e = errno
        if e == EINTR { continue }
        throw FSPFError.io(path: path(), operation: operation(), errno: e)
    }
}

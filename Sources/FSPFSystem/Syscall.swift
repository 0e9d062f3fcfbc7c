#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum Errno {
    static var current: Int32 { errno }
    static func describe(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
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

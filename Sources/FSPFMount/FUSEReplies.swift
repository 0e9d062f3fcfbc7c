import CFuse3
import FSPFSystem
import Glibc
import Logging

/// What both FUSE tables answer when a request's handler throws: the errno it carries (an
/// `Errno` from the volume's own checks, or a system call's through `FSPFError.io`, logged), or
/// EIO for anything else, logged. Kept apart from the tables so it is testable without a mount.
enum FUSEReplies {
    static func errno(for error: any Error, logger: Logger) -> Int32 {
        switch error {
        case let e as Errno:
            return e.code
        case FSPFError.io(let path, let operation, let code):
            logger.error("\(path): \(operation) failed: \(Errno(code))")
            return code
        default:
            logger.error("\(error)")
            return EIO
        }
    }

    /// Runs a callback body for `req`; what it throws becomes the reply.
    static func run<Mount: AnyObject>(_ req: fuse_req_t?, _ type: Mount.Type, logger: (Mount) -> Logger, _ body: (Mount) throws -> Void) {
        let mount = Unmanaged<Mount>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
        do { try body(mount) } catch { fuse_reply_err(req, errno(for: error, logger: logger(mount))) }
    }

    /// getxattr/listxattr protocol: size 0 asks for the length, a smaller buffer is ERANGE.
    static func xattr(_ req: fuse_req_t?, _ value: [UInt8], _ size: Int) throws {
        if size == 0 { fuse_reply_xattr(req, value.count); return }
        guard size >= value.count else { throw Errno(ERANGE) }
        value.withUnsafeBytes { _ = fuse_reply_buf(req, $0.baseAddress?.assumingMemoryBound(to: CChar.self), value.count) }
    }
}

import CLinux
import FSPFSystem
import FSPFCommandLine
import Foundation
import Glibc
import Logging

/// Tells whoever waits that the mounts are live: the parent of a backgrounded daemon (over a
/// pipe) and a service manager (sd_notify protocol, when NOTIFY_SOCKET is set).
final class Readiness: @unchecked Sendable {
    private var pipeWrite: Int32 = -1
    private let pending: Locked<Int>
    /// Run once the mounts are live and the parent told (a daemon's log redirection).
    var onLive: (@Sendable () -> Void)?

    init(mounts: Int) { pending = Locked(mounts) }

    /// Forks. In the parent, waits for the child's report and returns the exit status to use;
    /// in the child, returns nil.
    func forkAndWait() -> Int32? {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return nil }
        let pid = fork()
        if pid < 0 { return ExitStatus.mountFailed }
        if pid == 0 {
            close(fds[0])
            pipeWrite = fds[1]
            _ = fcntl(pipeWrite, F_SETFD, FD_CLOEXEC)
            return nil
        }
        close(fds[1])
        var byte: UInt8 = 1
        let n = read(fds[0], &byte, 1)
        close(fds[0])
        if n == 1 && byte == 0 { return 0 }
        // The child died before the mount went live; its stderr has the reason.
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let code = (status >> 8) & 0xff
        return status & 0x7f == 0 && code != 0 ? code : ExitStatus.mountFailed
    }

    /// Called from a mount's INIT callback, which libfuse answers only once it returns: from
    /// another thread, waits until the mount serves a request (asked by a child process, never by
    /// the daemon itself: fspf_probe_in_child), tunes its readahead, and counts it live.
    func probe(_ mountpoint: String, readahead: Int, logger: Logger) {
        Thread.detachNewThread {
            _ = fspf_probe_in_child(mountpoint)
            if readahead > 0 { Tuning.setReadahead(mountpoint: mountpoint, kib: readahead, logger: logger) }
            self.signal()
        }
    }

    func signal() {
        guard pending.withLock({ $0 -= 1; return $0 }) == 0 else { return }
        if pipeWrite >= 0 {
            var zero: UInt8 = 0
            _ = write(pipeWrite, &zero, 1)
            close(pipeWrite)
            pipeWrite = -1
            onLive?()
        }
        notifyServiceManager("READY=1\nMAINPID=\(getpid())")
    }

    private func notifyServiceManager(_ message: String) {
        guard let raw = getenv("NOTIFY_SOCKET") else { return }
        var path = Array(String(cString: raw).utf8)
        guard !path.isEmpty, path.count < 108 else { return }
        if path[0] == UInt8(ascii: "@") { path[0] = 0 }  // abstract socket
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in path.withUnsafeBytes { dst.copyMemory(from: $0) } }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        _ = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withCString { sendto(fd, $0, strlen($0), Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
    }
}

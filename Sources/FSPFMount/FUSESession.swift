import CFuse3
import CLinux
import FSPFSystem
import FSPFCommandLine
import Foundation
import Glibc
import Logging

extension MountDaemon {
    /// A mount about to be made: its callbacks, their user data (released after the session)
    /// and what the log says of it.
    struct Target {
        var mountpoint: String
        /// "ro" or "rw".
        var access: String
        var ops: fuse_lowlevel_ops
        var userdata: UnsafeMutableRawPointer
        var release: (UnsafeMutableRawPointer) -> Void
        var description: Logger.Metadata
        /// Run once by the process that served the mount (never by a parent that went on to
        /// exit while its daemon serves), or when mounting failed.
        var cleanup: () -> Void = {}
    }

    /// Mounts the targets and serves them: in the background unless --foreground (the parent
    /// returns once all are live), as `--user` once mounted, until SIGTERM/SIGINT/SIGHUP or
    /// the first one's unmount ends all. `finally` runs once the loops have ended, before the
    /// sessions are destroyed (a read-write mount seals there).
    static func serve(_ targets: [Target], config: MountConfiguration, readiness: Readiness, logger: Logger,
                      finally: () -> Int32 = { 0 }) throws -> Outcome {
        var logFD: Int32? = nil
        if case .file(let path) = config.log, !config.foreground {
            let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw FSPFError.io(path: path, operation: "open log file", errno: errno) }
            logFD = fd
        }
        if !config.foreground {
            let destination = config.log, fd = logFD
            readiness.onLive = { LogSink.detach(to: destination, fd: fd) }
        }
        var options = "default_permissions,fsname=fspf,subtype=fspf"
        if config.allowOther { options += ",allow_other" }
        if config.noExec { options += ",noexec" }
        var sessions: [(session: OpaquePointer, target: Target)] = []
        var pending = targets[...]
        func unmountAll() {
            for s in sessions { fuse_session_unmount(s.session) }
        }
        var serving = true
        defer {
            for s in sessions {
                fuse_session_destroy(s.session)
                s.target.release(s.target.userdata)
            }
            for t in pending { t.release(t.userdata) }
            if serving { for t in targets { t.cleanup() } }
        }
        while let target = pending.first {
            var argv: [UnsafeMutablePointer<CChar>?] = ["fspf-mount", "-o", target.access + "," + options].map { (s: String) in strdup(s) }
            defer { argv.forEach { free($0) } }
            var args = fuse_args(argc: Int32(argv.count), argv: nil, allocated: 0)
            var ops = target.ops
            let session: OpaquePointer? = argv.withUnsafeMutableBufferPointer { buf in
                args.argv = buf.baseAddress
                return fspf_fuse_session_new(&args, &ops, target.userdata)
            }
            fuse_opt_free_args(&args)
            guard let session else {
                unmountAll()
                throw FSPFError.mountFailed(path: target.mountpoint, reason: "could not create the FUSE session")
            }
            guard fuse_session_mount(session, target.mountpoint) == 0 else {
                fuse_session_destroy(session)
                unmountAll()
                throw FSPFError.mountFailed(path: target.mountpoint, reason: "the kernel refused the mount (see the line above)")
            }
            pending = pending.dropFirst()
            sessions.append((session, target))
            logger.info("mounted", metadata: target.description)
        }
        let session = sessions[0].session
        let mountpoint = sessions[0].target.mountpoint

        if !config.foreground {
            // Parent: wait until the child reports the mount initialised, then exit 0.
            if let parentStatus = readiness.forkAndWait() {
                serving = false
                return parentStatus == 0 ? .background(sessions.map(\.target.mountpoint)) : .failed(parentStatus)
            }
            setsid()
        }
        _ = chdir("/")
        if let user = config.user {
            do { try Hardening.dropPrivileges(to: user) } catch {
                unmountAll()
                throw error
            }
            logger.info("running as \(user)")
        }
        Hardening.lockMemory(logger: logger)

        guard fuse_set_signal_handlers(session) == 0 else {
            unmountAll()
            throw FSPFError.mountFailed(path: mountpoint, reason: "cannot install signal handlers")
        }
        // Further mounts (--scone with several regions) loop on threads of their own and end
        // when the first one does (SIGTERM/SIGINT/SIGHUP or its unmount) unmounts them.
        let others = DispatchGroup()
        for s in sessions.dropFirst() {
            let loop = UncheckedSession(s.session)
            others.enter()
            Thread.detachNewThread {
                _ = fspf_fuse_session_loop_mt(loop.session, config.threads)
                others.leave()
            }
        }
        // The loop returns 0 on unmount, the signal number on SIGTERM/SIGINT/SIGHUP, < 0 on error.
        let status = fspf_fuse_session_loop_mt(session, config.threads)
        unmountAll()
        others.wait()
        fuse_remove_signal_handlers(session)
        let final = finally()
        if status < 0 {
            logger.error("FUSE loop failed: \(Errno(-status).description)")
            return .served(ExitStatus.mountFailed)
        }
        for s in sessions { logger.info("unmounted", metadata: ["mountpoint": "\(s.target.mountpoint)"]) }
        return .served(final)
    }
}

/// A FUSE session handed to the thread that runs its loop.
private struct UncheckedSession: @unchecked Sendable {
    let session: OpaquePointer
    init(_ session: OpaquePointer) { self.session = session }
}

import CFuse3
import FSPFCore
import FSPFCrypto
import FSPFSystem
import Glibc
import Logging

/// Process hardening for the daemon that holds the key and decrypted data.
public enum Hardening {
    /// Not dumpable (no ptrace by others, no core, /proc/<pid>/mem closed) and no core files.
    public static func apply(logger: Logger) {
        if fspf_set_not_dumpable() != 0 { logger.warning("could not mark the process non-dumpable") }
        var none = rlimit(rlim_cur: 0, rlim_max: 0)
        if setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &none) != 0 { logger.warning("could not disable core files") }
    }

    public static var isDumpable: Bool { fspf_is_dumpable() != 0 }

    /// Locks all present and future memory (key, metadata, plaintext buffers) so none of it
    /// is ever swapped out. MCL_ONFAULT: pages are locked as they are touched, not prefaulted.
    static func lockMemory(logger: Logger) {
        let onFault: Int32 = 4  // MCL_ONFAULT (Linux ≥ 4.4)
        if mlockall(MCL_CURRENT | MCL_FUTURE | onFault) != 0 {
            logger.warning("could not lock memory (mlockall: \(Errno(errno).description)); pages may be swapped")
        }
    }

    /// Switches to `spec` ("user" or "user:group") for good.
    static func dropPrivileges(to spec: String) throws {
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard let pw = getpwnam(parts[0]) else { throw FSPFError.usage("--user \(spec): no such user") }
        var gid = pw.pointee.pw_gid
        if parts.count == 2 {
            guard let gr = getgrnam(parts[1]) else { throw FSPFError.usage("--user \(spec): no such group") }
            gid = gr.pointee.gr_gid
        }
        let uid = pw.pointee.pw_uid
        guard initgroups(parts[0], gid) == 0, setgid(gid) == 0, setuid(uid) == 0, getuid() == uid, geteuid() == uid,
              uid == 0 || setuid(0) != 0 else {
            throw FSPFError.mountFailed(path: spec, reason: "could not switch to user \(spec): \(Errno(errno).description)")
        }
        _ = fspf_set_not_dumpable()  // a uid change resets it to the system default
    }
}

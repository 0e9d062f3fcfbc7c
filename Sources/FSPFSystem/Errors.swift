import Glibc

/// Every failure FSPFCore reports. Each case names the path it concerns and maps to one
/// documented process exit status (FSPFCommandLine's `ExitStatus`), so build scripts can tell
/// a wrong key from a tampered volume from a full disk.
public enum FSPFError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The request itself is wrong (bad option value, bad hex, ...).
    case usage(String)
    /// An input that should exist is missing or cannot be opened.
    case noInput(path: String, reason: String)
    /// An input exists but cannot be protected or parsed (special file, non-UTF-8 name,
    /// file changed while read, not a volume, unsupported version).
    case badInput(path: String, reason: String)
    /// The output location is taken.
    case outputExists(path: String)
    /// A file the tool creates for its user (a key, a tag, a draft) is there already; `hint`
    /// names the flag that replaces it.
    case fileExists(path: String, hint: String)
    /// Another process is writing the same output right now.
    case outputBusy(path: String)
    /// A system call failed (disk full, permission, ...).
    case io(path: String, operation: String, errno: Int32)
    /// The key does not open this volume.
    case wrongKey(path: String)
    /// Something on disk is not what the volume's author wrote.
    case integrity(path: String, reason: String)
    /// The run was interrupted (SIGINT/SIGTERM); nothing usable was left behind.
    case interrupted
    /// A key source could not deliver a key (unset variable, agent down, bad answer).
    case keyUnavailable(source: String, reason: String)
    /// Attestation evidence failed verification or the policy (fspf quote verify).
    case evidenceRefused(source: String, reason: String)
    /// A written volume's new version was sealed, but the key server did not record its tag.
    case notRecorded(source: String, reason: String)
    /// /dev/fuse is missing or cannot be opened.
    case fuseUnavailable(reason: String)
    /// The mount itself failed (mount point missing, busy, not permitted).
    case mountFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .usage(let m): return m
        case .noInput(let p, let r): return "\(p): \(r)"
        case .badInput(let p, let r): return "\(p): \(r)"
        case .outputExists(let p): return "\(p): output exists and is not an empty directory"
        case .fileExists(let p, let hint): return "\(p): already exists; not replaced" + (hint.isEmpty ? "" : " (\(hint) replaces it)")
        case .outputBusy(let p): return "\(p): another fspf is writing this output now"
        case .io(let p, let op, let e): return "\(p): \(op) failed: \(Errno(e))"
        case .wrongKey(let p): return "\(p): wrong key (the key does not open this volume, or its header was altered)"
        case .integrity(let p, let r): return "\(p): integrity check failed: \(r)"
        case .interrupted: return "interrupted; partial output removed"
        case .keyUnavailable(let s, let r): return "\(s): no key: \(r)"
        case .evidenceRefused(let s, let r): return "\(s): evidence refused: \(r)"
        case .notRecorded(let s, let r): return "\(s): not recorded by the key server: \(r)"
        case .fuseUnavailable(let r): return "/dev/fuse: \(r)"
        case .mountFailed(let p, let r): return "\(p): mount failed: \(r)"
        }
    }

    /// The same error with a path below `old` named below `new` instead.
    public func replacingPath(_ old: String, with new: String) -> FSPFError {
        func r(_ p: String) -> String { p == old ? new : p.hasPrefix(old + "/") ? new + p.dropFirst(old.count) : p }
        switch self {
        case .noInput(let p, let why): return .noInput(path: r(p), reason: why)
        case .badInput(let p, let why): return .badInput(path: r(p), reason: why)
        case .outputExists(let p): return .outputExists(path: r(p))
        case .fileExists(let p, let hint): return .fileExists(path: r(p), hint: hint)
        case .outputBusy(let p): return .outputBusy(path: r(p))
        case .io(let p, let op, let e): return .io(path: r(p), operation: op, errno: e)
        default: return self
        }
    }
}

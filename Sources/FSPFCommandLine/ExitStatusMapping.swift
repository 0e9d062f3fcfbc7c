import FSPFSystem
import Glibc

extension FSPFError {
    /// The process exit status for this error.
    public var exitStatus: Int32 {
        switch self {
        case .usage: return ExitStatus.usage
        case .noInput: return ExitStatus.noInput
        case .badInput: return ExitStatus.badInput
        case .outputExists, .fileExists, .outputBusy: return ExitStatus.cannotCreate
        case .io(_, _, let e): return e == ENOENT ? ExitStatus.noInput : ExitStatus.ioError
        case .wrongKey: return ExitStatus.wrongKey
        case .integrity: return ExitStatus.integrity
        case .interrupted: return ExitStatus.interrupted
        case .keyUnavailable: return ExitStatus.keyUnavailable
        case .evidenceRefused: return ExitStatus.evidenceRefused
        case .notRecorded: return ExitStatus.notRecorded
        case .fuseUnavailable: return ExitStatus.fuseUnavailable
        case .mountFailed: return ExitStatus.mountFailed
        }
    }
}

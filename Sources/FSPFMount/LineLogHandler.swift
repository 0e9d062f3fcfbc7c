import FSPFSystem
import Glibc
import Logging

/// One line per event: `<time> fspf-mount <level>: <message> key=value …`, on stderr until a
/// backgrounded daemon is live, then where `--log-file` says (LogSink). Written with a single
/// write(2) so lines from worker threads never interleave.
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String

    public init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        var text = "\(Self.timestamp()) \(label) \(event.level): \(event.message)"
        for (k, v) in fields.sorted(by: { $0.key < $1.key }) { text += " \(k)=\(v)" }
        text = text.replacingOccurrences(of: "\n", with: " ") + "\n"
        LogSink.write(text, level: event.level)
    }

    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { strftime($0.baseAddress!, $0.count, "%Y-%m-%dT%H:%M:%SZ", &parts) }
        }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }
}

/// Where a backgrounded daemon's log lines go once it is live: it lets go of the caller's
/// stdout and stderr, so `x=$(fspf-mount …)`, a pipe or a CI log capture do not wait for the
/// unmount.
public enum LogDestination: Sendable, Equatable {
    /// The daemon's stderr (before it is live, and with --foreground).
    case standardError
    /// Appended to this file (opened before mounting, so a bad path is reported at once).
    case file(String)
    /// syslog(3), facility daemon: journald where it runs.
    case syslog
    case none

    /// `--log-file` values: `syslog`, `none`, or a path (`./syslog` for a file of that name).
    public init(argument: String) {
        switch argument {
        case "syslog": self = .syslog
        case "none": self = .none
        default: self = .file(argument)
        }
    }
}

enum LogSink {
    private enum Target { case fd(Int32), syslog, none }
    private static let target = Locked<Target>(.fd(2))

    static func write(_ line: String, level: Logger.Level) {
        switch target.withLock({ $0 }) {
        case .fd(let fd): _ = line.withCString { Glibc.write(fd, $0, strlen($0)) }
        case .none: break
        case .syslog:
            let priority: Int32 = switch level {
            case .trace, .debug: LOG_DEBUG
            case .info, .notice: LOG_INFO
            case .warning: LOG_WARNING
            case .error: LOG_ERR
            case .critical: LOG_CRIT
            }
            // Without the time stamp: syslog adds its own.
            let message = String(line.drop { $0 != " " }.dropFirst().dropLast())
            message.withCString { text in withVaList([text]) { vsyslog(priority, "%s", $0) } }
        }
    }

    /// Switches to `destination` (`fd`: the opened --log-file) and points the standard
    /// descriptors at /dev/null.
    static func detach(to destination: LogDestination, fd: Int32?) {
        switch destination {
        case .standardError: return
        case .file: target.withLock { $0 = .fd(fd!) }
        case .syslog:
            openlog("fspf-mount", LOG_PID, LOG_DAEMON)
            target.withLock { $0 = .syslog }
        case .none: target.withLock { $0 = .none }
        }
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            for std in Int32(0)...2 { dup2(null, std) }
            if null > 2 { close(null) }
        }
    }
}

import Glibc
import Logging

/// One line per event on stderr: `<time> fspf-mount <level>: <message> key=value …`.
/// Written with a single write(2) so lines from worker threads never interleave.
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
        _ = text.withCString { write(2, $0, strlen($0)) }
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

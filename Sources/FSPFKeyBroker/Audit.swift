import FSPFAttestation
import FSPFCrypto
import FSPFSystem
import Foundation
import Glibc

/// One JSON line per request, appended and flushed to disk before the answer is sent: time,
/// peer, request, volume, evidence type, decision, HTTP status, reason, and the measurement when
/// the evidence was readable. Never a key.
public final class AuditLog: @unchecked Sendable {
    private let fd: Locked<Int32>
    public let path: String

    public struct Entry: Codable, Sendable {
        public var time: String
        public var peer: String
        public var request: String
        public var volume: String?
        public var evidence: String?
        public var decision: String     // released | recorded (a writer's report) | refused | rejected (malformed) | served
        public var status: Int
        public var reason: String
        public var mrenclave: String?
        public var mrsigner: String?
    }

    public init(path: String) throws {
        let f = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard f >= 0 else { throw FSPFError.io(path: path, operation: "opening the audit log", errno: errno) }
        fd = Locked(f)
        self.path = path
    }

    deinit { fd.withLock { _ = close($0) } }

    func record(_ entry: Entry) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let line = try? encoder.encode(entry) else { return }
        let bytes = [UInt8](line) + [0x0a]
        fd.withLock { f in
            _ = bytes.withUnsafeBytes { write(f, $0.baseAddress, $0.count) }
            _ = fdatasync(f)
        }
    }
}

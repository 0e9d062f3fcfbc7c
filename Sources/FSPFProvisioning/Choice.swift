import FSPFCrypto
import FSPFSystem
import Glibc

extension KeySource {
    /// At most one of the given sources (nil if none), as the command-line tools accept them.
    public static func choose(_ candidates: [(option: String, source: KeySource?)]) throws -> KeySource? {
        let given = candidates.filter { $0.source != nil }
        guard given.count <= 1 else {
            throw FSPFError.usage("give only one key source (\(given.map(\.option).joined(separator: ", ")))")
        }
        return given.first?.source
    }
}

/// The expected tag from `--tag HEX` or `--tag-env NAME` (at most one).
public func expectedTag(hex: String?, environment name: String?) throws -> [UInt8]? {
    if hex != nil && name != nil { throw FSPFError.usage("give at most one of --tag, --tag-env") }
    if let hex { return try parseTag(hex, source: "--tag") }
    if let name {
        guard let v = getenv(name) else { throw FSPFError.usage("environment variable \(name) is not set") }
        return try parseTag(String(cString: v), source: "$\(name)")
    }
    return nil
}

import FSPFCrypto
import FSPFSystem

/// The textual forms a volume key and a volume tag take in files, variables and key
/// resources. Only lengths and hex here; what a tag means is the volume format's business.
public enum KeyText {
    public static let keySize = 32
    /// A volume tag is 16 bytes (SCONE's 32-hex field, and format-1 tags) or 32 bytes (the
    /// full-strength identifier of format 2).
    public static let tagSizes = [16, 32]

    /// Parses a key given as 64 hex digits (surrounding white space ignored) or as 32 raw
    /// bytes, into guarded memory; `bytes` is wiped.
    public static func parseKey(_ bytes: inout [UInt8], source: String) throws -> SecureBytes {
        defer { bytes.withUnsafeMutableBytes { Sodium.zero($0) } }
        if bytes.count == keySize { return SecureBytes(consuming: &bytes) }
        var trimmed = bytes.filter { !($0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09) }
        defer { trimmed.withUnsafeMutableBytes { Sodium.zero($0) } }
        guard trimmed.count == 2 * keySize, var raw = Hex.decode(trimmed) else {
            throw FSPFError.usage("\(source): not a volume key (expected 64 hex digits or 32 raw bytes)")
        }
        return SecureBytes(consuming: &raw)
    }
}

/// Parses a volume tag: 32 hex digits (16 bytes) or 64 (32 bytes); white space around ignored.
public func parseTag(_ text: String, source: String) throws -> [UInt8] {
    let t = text.trimmingWhitespace
    guard KeyText.tagSizes.contains(t.utf8.count / 2), t.utf8.count % 2 == 0, let tag = Hex.decode(t) else {
        throw FSPFError.usage("\(source): not a volume tag (expected 32 or 64 hex digits)")
    }
    return tag
}

extension String {
    var trimmingWhitespace: String {
        let ws: Set<Character> = [" ", "\n", "\r", "\t"]
        guard let s = firstIndex(where: { !ws.contains($0) }), let e = lastIndex(where: { !ws.contains($0) }) else { return "" }
        return String(self[s...e])
    }
}

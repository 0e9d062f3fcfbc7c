import FSPFCrypto
import FSPFSystem

/// How `fspf encrypt` reports key and tag to build scripts.
public enum ReportFormat: String, CaseIterable, Sendable {
    /// SCONE's exact line; awk '{print $9}' is the (short) tag and '{print $11}' the key.
    case line
    /// {"metadata", "format", "tag", "full_tag", "key", "files", "bytes"}
    case json
    /// `export PREFIX_KEY=…` / `export PREFIX_TAG=…` (SCONE's 32 hex) / `export PREFIX_FULL_TAG=…`
    /// (64 hex), for an env.sh.
    case env
}

public struct EncryptReport: Sendable {
    public var metadataPath: String
    public var tag: VolumeTag
    /// nil when the key went to a file instead of standard output.
    public var keyHex: String?
    public var files: Int
    public var bytes: UInt64

    public init(metadataPath: String, tag: VolumeTag, keyHex: String?, files: Int, bytes: UInt64) {
        self.metadataPath = metadataPath
        self.tag = tag
        self.keyHex = keyHex
        self.files = files
        self.bytes = bytes
    }

    public func render(_ format: ReportFormat, envPrefix: String = "VOLUME") -> String {
        let short = Hex.encode(tag.short), full = Hex.encode(tag.full)
        switch format {
        case .line:
            var s = "Encrypted file system protection file \(metadataPath) AES-GCM tag: \(short)"
            if let k = keyHex { s += " key: \(k)" }
            return s
        case .env:
            var s = ""
            if let k = keyHex { s += "export \(envPrefix)_KEY=\(k)\n" }
            s += "export \(envPrefix)_TAG=\(short)\nexport \(envPrefix)_FULL_TAG=\(full)"
            return s
        case .json:
            var fields = [("metadata", JSON.string(metadataPath)), ("format", String(tag.version.rawValue)),
                          ("tag", JSON.string(short)), ("full_tag", JSON.string(full))]
            if let k = keyHex { fields.append(("key", JSON.string(k))) }
            fields += [("files", String(files)), ("bytes", String(bytes))]
            return "{" + fields.map { "\(JSON.string($0.0)): \($0.1)" }.joined(separator: ", ") + "}"
        }
    }
}

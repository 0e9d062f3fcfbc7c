import FSPFCrypto
import FSPFSystem

/// How `fspf encrypt` reports key and tag to build scripts.
public enum ReportFormat: String, CaseIterable, Sendable {
    /// SCONE's exact line; awk '{print $9}' is the tag and '{print $11}' the key.
    case line
    case json
    /// `export PREFIX_KEY=…` / `export PREFIX_TAG=…`, for an env.sh.
    case env
}

public struct EncryptReport: Sendable {
    public var metadataPath: String
    public var tag: [UInt8]
    /// nil when the key went to a file instead of standard output.
    public var keyHex: String?
    public var files: Int
    public var bytes: UInt64

    public init(metadataPath: String, tag: [UInt8], keyHex: String?, files: Int, bytes: UInt64) {
        self.metadataPath = metadataPath
        self.tag = tag
        self.keyHex = keyHex
        self.files = files
        self.bytes = bytes
    }

    public func render(_ format: ReportFormat, envPrefix: String = "VOLUME") -> String {
        let tag = Hex.encode(self.tag)
        switch format {
        case .line:
            var s = "Encrypted file system protection file \(metadataPath) AES-GCM tag: \(tag)"
            if let k = keyHex { s += " key: \(k)" }
            return s
        case .env:
            var s = ""
            if let k = keyHex { s += "export \(envPrefix)_KEY=\(k)\n" }
            s += "export \(envPrefix)_TAG=\(tag)"
            return s
        case .json:
            var fields = [("metadata", JSON.string(metadataPath)), ("tag", JSON.string(tag))]
            if let k = keyHex { fields.append(("key", JSON.string(k))) }
            fields += [("files", String(files)), ("bytes", String(bytes))]
            return "{" + fields.map { "\(JSON.string($0.0)): \($0.1)" }.joined(separator: ", ") + "}"
        }
    }
}

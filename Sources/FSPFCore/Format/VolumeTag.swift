import FSPFCrypto

/// What an attestation policy pins (docs/FORMAT.md §4).
///
/// Version 2: `full` = SHA-256("FSPF-VOLUME-v2" ‖ 0 ‖ every byte of the sealed metadata file),
/// 32 bytes; `short` = its first 16 bytes, which fill the 32-hex field of SCONE's output line.
/// Version 1: the metadata's 16-byte AES-GCM tag, which is both.
public struct VolumeTag: Equatable, Sendable, CustomStringConvertible {
    public let version: FormatVersion
    public let full: [UInt8]

    public static let shortSize = 16
    public static let fullSize = 32
    static let label = Array("FSPF-VOLUME-v2".utf8) + [0]

    init(version: FormatVersion, full: [UInt8]) {
        self.version = version
        self.full = full
    }

    /// The tag of a sealed metadata file of `version` (`gcmTag` is its last 16 bytes).
    static func of(file: [UInt8], version: FormatVersion) -> VolumeTag {
        switch version {
        case .v1: return VolumeTag(version: .v1, full: Array(file.suffix(16)))
        case .v2:
            var h = SHA256()
            h.update(label)
            h.update(file)
            return VolumeTag(version: .v2, full: h.finish())
        }
    }

    /// The 16-byte form (SCONE's field).
    public var short: [UInt8] { Array(full.prefix(VolumeTag.shortSize)) }

    /// Whether an expected tag names this volume: 32 bytes must equal the full tag, 16 bytes its
    /// short form (constant-time either way).
    public func matches(_ expected: [UInt8]) -> Bool {
        switch expected.count {
        case VolumeTag.shortSize: return Sodium.equal(expected, short)
        case VolumeTag.fullSize: return version != .v1 && Sodium.equal(expected, full)
        default: return false
        }
    }

    /// The short form in hex, as SCONE prints it.
    public var description: String { Hex.encode(short) }
}

import FSPFCrypto
import FSPFSystem

/// Regions as in SCONE: a file belongs to the region with the longest matching path prefix.
public enum RegionKind: UInt8, Sendable, CaseIterable, Codable {
    case encrypted = 1
    case authenticated = 2
    case notProtected = 3

    public var name: String {
        switch self {
        case .encrypted: return "encrypted"
        case .authenticated: return "authenticated"
        case .notProtected: return "not-protected"
        }
    }
}

public struct Region: Equatable, Sendable, Codable {
    /// Normalised volume path ("" is the root).
    public var path: String
    public var kind: RegionKind
    public var chunkSize: UInt32
    /// SCONE's `--ephemeral`: writable in the workload, never persisted; the volume records no
    /// file in it, and `fspf-mount --scone` serves it as a fresh volume under a throw-away key.
    public var ephemeral: Bool

    public init(path: String, kind: RegionKind, chunkSize: UInt32, ephemeral: Bool = false) {
        self.path = path
        self.kind = kind
        self.chunkSize = chunkSize
        self.ephemeral = ephemeral
    }

    /// The region byte: the kind, with bit 7 set for an ephemeral region.
    static let ephemeralBit: UInt8 = 0x80

    /// The region of `path`: longest matching prefix, component-wise. `regions` always
    /// contains the root region.
    /// Regions as a volume records them: sorted by path bytes, with an encrypted root region
    /// of `chunkSize` unless one is given.
    static func normalized(_ regions: [Region], rootChunkSize: UInt32) -> [Region] {
        var r = regions
        if !r.contains(where: { $0.path.isEmpty }) { r.append(Region(path: "", kind: .encrypted, chunkSize: rootChunkSize)) }
        return r.sorted { Paths.precedes(Array($0.path.utf8), Array($1.path.utf8)) }
    }

    public static func of(_ path: String, in regions: [Region]) -> Region {
        var best: Region? = nil
        for r in regions where Paths.isWithin(path, r.path) {
            if best == nil || r.path.utf8.count > best!.path.utf8.count { best = r }
        }
        return best!
    }
}

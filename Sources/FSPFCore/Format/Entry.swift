import FSPFCrypto
import FSPFSystem

public enum EntryContent: Equatable, Sendable {
    case directory
    case symlink(target: [UInt8])
    /// `plain` is where the plaintext lies on disk (authenticated and not-protected regions).
    case file(size: UInt64, region: RegionKind, protection: ProtectedFile?, plain: String?)
}

/// An extended attribute (`user.*`, `security.*`, `trusted.*`, `system.posix_acl_*`).
public struct ExtendedAttribute: Equatable, Sendable {
    public var name: [UInt8]
    public var value: [UInt8]
    public init(name: [UInt8], value: [UInt8]) { self.name = name; self.value = value }
    public static let maximumNameLength = 255
    public static let maximumValueLength = 65536
}

public struct Entry: Equatable, Sendable {
    public var path: String
    /// Permission bits (and setuid, setgid, sticky).
    public var mode: UInt32
    public var mtimeSeconds: Int64
    public var mtimeNanoseconds: UInt32
    public var content: EntryContent
    /// Owner (version 2; version-1 volumes record none and read as 0).
    public var uid: UInt32
    public var gid: UInt32
    /// Sorted by name (version 2).
    public var xattrs: [ExtendedAttribute]
    /// For the second and later paths of a hard-linked file: the index of its first path, whose
    /// content and attributes this entry shares (version 2).
    public var linkOf: Int?

    public init(path: String, mode: UInt32, mtimeSeconds: Int64, mtimeNanoseconds: UInt32, content: EntryContent,
                uid: UInt32 = 0, gid: UInt32 = 0, xattrs: [ExtendedAttribute] = [], linkOf: Int? = nil) {
        self.path = path
        self.mode = mode
        self.mtimeSeconds = mtimeSeconds
        self.mtimeNanoseconds = mtimeNanoseconds
        self.content = content
        self.uid = uid
        self.gid = gid
        self.xattrs = xattrs
        self.linkOf = linkOf
    }

    public var size: UInt64 {
        switch content {
        case .directory: return 0
        case .symlink(let t): return UInt64(t.count)
        case .file(let s, _, _, _): return s
        }
    }

    public var isDirectory: Bool { if case .directory = content { return true } else { return false } }
    public var isFile: Bool { if case .file = content { return true } else { return false } }

    /// The object holding this entry's content, as the metadata names it (relative to the
    /// volume directory, or absolute): nil for a hard link (its first path names it), a file
    /// whose tag tree is kept inline, and anything that is not a protected file.
    public var storedObject: String? {
        guard linkOf == nil, case .file(_, _, let p?, _) = content, p.inlineTree == nil else { return nil }
        return p.object
    }
}

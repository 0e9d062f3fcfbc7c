/// The on-disk format versions this code reads (docs/FORMAT.md §11). New volumes are always
/// written in `current`; version 1 is read for compatibility only.
public enum FormatVersion: UInt16, Sendable, Comparable, CaseIterable {
    /// The volume tag is the metadata's AES-GCM tag and tree leaves are the chunks' GCM tags:
    /// binding against anyone without the key, forgeable by anyone with it (FORMAT.md §13).
    case v1 = 1
    /// The volume tag is a SHA-256 commitment to the sealed metadata, whose tag trees commit to
    /// every chunk's stored bytes by SHA-256: binding even against key holders.
    case v2 = 2

    public static let current = FormatVersion.v2

    public static func < (a: FormatVersion, b: FormatVersion) -> Bool { a.rawValue < b.rawValue }
}

/// What the tools say when they open a format-1 volume.
public enum FormatWarning {
    public static func version1(_ path: String) -> String {
        "warning: \(path): format version 1: its tag binds only against those without the key "
            + "(anyone with the key can make another volume with the same tag); 'fspf upgrade' converts it"
    }
}

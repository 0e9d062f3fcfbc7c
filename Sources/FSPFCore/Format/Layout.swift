import FSPFSystem

/// How the metadata names the files a volume keeps beside it (docs/FORMAT.md §2): objects and
/// an authenticated file's plaintext are recorded relative to the metadata file's directory,
/// or absolute when they lie outside it (SCONE's regions at their `--kernel` paths).
enum Layout {
    /// The recorded location of `path` for a metadata file in directory `base`.
    static func location(of path: String, base: String) -> String {
        let absPath = Paths.normalized(path), absBase = Paths.normalized(base)
        if absBase == "/" { return String(absPath.dropFirst()) }
        if absPath.hasPrefix(absBase + "/") { return String(absPath.dropFirst(absBase.count + 1)) }
        return absPath
    }
}

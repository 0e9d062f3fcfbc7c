/// The release of this code: the one place its version is written. `fspf --version`,
/// `fspf-mount --version`, libfspf's `fspf_version()` and `make deb` take it from here; the Python
/// package's and CHANGELOG.md's must match it (a test checks).
public enum FSPFVersion {
    public static let number = "0.3.0"

    /// What `--version` prints: the release and the volume formats it reads and writes.
    public static func describe(_ program: String) -> String {
        let reads = FormatVersion.allCases.map { String($0.rawValue) }.joined(separator: ", ")
        return "\(program) \(number) (volume formats: reads \(reads); writes \(FormatVersion.current.rawValue))"
    }
}

/// Process exit statuses shared by every FSPF executable, and what each means: the one source
/// of the exit-code lists in `fspf --help`, `fspf-mount --help`, the man pages generated from
/// them, and the table in docs/USAGE.md (ExitStatusTests compares it with `meanings`).
public enum ExitStatus {
    public static let success: Int32 = 0
    public static let integrity: Int32 = 10
    public static let wrongKey: Int32 = 11
    public static let keyUnavailable: Int32 = 12
    public static let evidenceRefused: Int32 = 13
    public static let notRecorded: Int32 = 14
    public static let mountFailed: Int32 = 20
    public static let fuseUnavailable: Int32 = 21
    public static let usage: Int32 = 64       // EX_USAGE
    public static let badInput: Int32 = 65    // EX_DATAERR
    public static let noInput: Int32 = 66     // EX_NOINPUT
    public static let cannotCreate: Int32 = 73 // EX_CANTCREAT
    public static let ioError: Int32 = 74     // EX_IOERR
    public static let interrupted: Int32 = 130

    /// Every status and its meaning, in order (Markdown: `code` spans are commands and flags).
    public static let meanings: [(code: Int32, meaning: String)] = [
        (success, "success"),
        (integrity, "integrity failure: tampered, truncated, swapped, rolled back, or not the expected tag"),
        (wrongKey, "wrong key"),
        (keyUnavailable, "key source failed (unset variable, agent down, slow or answering garbage, key broker refused the "
            + "evidence or released the key for reading only to a read-write mount)"),
        (evidenceRefused, "attestation evidence refused (`fspf quote verify`)"),
        (notRecorded, "a written volume's new version was sealed, but the key server did not record its tag (`fspf seal`, "
            + "`fspf-mount` at unmount; the log says why). `fspf seal --unmount` then leaves the mount in place, writable, so "
            + "that a later `fspf seal` reports the version again; `fspf-mount` at unmount has the version on disk and exits"),
        (mountFailed, "mount failed (mount point missing, busy or not empty; `--require-tee` outside a TEE)"),
        (fuseUnavailable, "`/dev/fuse` missing or not usable"),
        (usage, "usage error"),
        (badInput, "input that cannot be protected or parsed (special file, file changed while read, not a volume, a format-1 "
            + "volume under a tag without `--accept-v1`), or a symbolic link or special file where fspf expects a directory or "
            + "file of its own below a volume or store (never followed)"),
        (noInput, "missing or unreadable input"),
        (cannotCreate, "output exists and is not an empty directory (for `decrypt`: exists at all), or another `fspf` is "
            + "writing it; a file fspf would create for you (key, tag file, draft) exists: the line names the flag that "
            + "replaces it"),
        (ioError, "I/O error (e.g. disk full)"),
        (interrupted, "interrupted (SIGINT/SIGTERM); partial output removed"),
    ]

    /// "Exit codes: 0 success, 10 …" for a command's help: `codes` (default: all) with their
    /// meanings, or the command's own words for some of them.
    public static func help(_ codes: [Int32]? = nil, saying own: [Int32: String] = [:]) -> String {
        let listed = meanings.filter { codes?.contains($0.code) ?? true }
        precondition(Set(own.keys).isSubset(of: Set(listed.map(\.code))) && listed.count == (codes?.count ?? meanings.count),
                     "exit codes outside ExitStatus.meanings")
        let items = listed.map { "\($0.code) \(String((own[$0.code] ?? $0.meaning).map { $0 == "`" ? "'" : $0 }))" }
        return "Exit codes: " + items.joined(separator: "; ") + "."
    }
}

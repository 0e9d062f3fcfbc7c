import Foundation
import Testing
import FSPFCore
import FSPFTestSupport

/// One version: both tools print FSPFVersion with the formats they read and write, and the
/// Python package and the changelog's newest entry say the same number.
@Suite struct VersionTests {
    @Test func toolsPrintTheOneVersionWithTheFormats() {
        let s = Sandbox()
        let r = s.sh("fspf --version && fspf-mount --version")
        let formats = "(volume formats: reads 1, 2; writes 2)"
        #expect(r.status == 0 && r.out == "fspf \(FSPFVersion.number) \(formats)\nfspf-mount \(FSPFVersion.number) \(formats)\n",
                "\(r.out)\(r.err)")
    }

    @Test func pythonPackageAndChangelogMatch() throws {
        let pyproject = try String(contentsOfFile: Tool.packageRoot + "/python/pyproject.toml", encoding: .utf8)
        #expect(pyproject.contains("\nversion = \"\(FSPFVersion.number)\"\n"), "python/pyproject.toml")
        let changelog = try String(contentsOfFile: Tool.packageRoot + "/CHANGELOG.md", encoding: .utf8)
        let newest = changelog.split(separator: "\n").first { $0.hasPrefix("## ") }
        #expect(newest?.hasPrefix("## \(FSPFVersion.number) ") == true, "CHANGELOG.md's newest entry: \(newest ?? "none")")
    }
}

import Foundation
import Testing
import FSPFCommandLine
import FSPFSystem

/// The exit-code lists cannot drift: help texts are made from `ExitStatus.meanings`, and the
/// table in docs/USAGE.md must be exactly it.
@Suite struct ExitStatusTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test func usageTableIsExitStatusMeanings() throws {
        let text = try String(contentsOfFile: Self.packageRoot + "/docs/USAGE.md", encoding: .utf8)
        let rows = text.split(separator: "\n").drop { $0 != "| code | meaning |" }.dropFirst(2).prefix { $0.hasPrefix("| ") }
        let documented = rows.map { row -> String in String(row) }
        let expected = ExitStatus.meanings.map { "| \($0.code) | \($0.meaning) |" }
        #expect(documented == expected)
    }

    @Test func helpListsTheCodesAskedForInOrder() {
        #expect(ExitStatus.help([0, 10, 74], saying: [0: "intact"]) == "Exit codes: 0 intact; 10 integrity failure: tampered, truncated, swapped, "
                + "rolled back, or not the expected tag; 74 I/O error (e.g. disk full).")
        #expect(ExitStatus.help().hasPrefix("Exit codes: 0 success; 10 "))
        #expect(ExitStatus.help().contains("; 13 attestation evidence refused ('fspf quote verify'); 14 "), "Markdown code spans become quotes")
        #expect(Set(ExitStatus.meanings.map(\.code)).count == ExitStatus.meanings.count)
    }
}

import ArgumentParser
import FSPFCore
import FSPFCommandLine
import FSPFCrypto
import FSPFSystem
import Glibc

struct Upgrade: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-encrypt a volume (format 1 or 2) into a new format-2 volume under the same key.",
        discussion: """
        Every byte is verified as it is read (give the old volume's --tag to pin what is converted); the new volume \
        keeps the tree, regions, chunk sizes, modes and times, and a reproducible volume stays reproducible. \
        It has a new tag, printed as 'fspf encrypt' prints it: pin that one from now on. A format-1 volume opens under \
        --tag only with --accept-v1 (its tag does not bind against key holders: pin the new tag only if you trust \
        whoever held the key).
        Example: fspf upgrade old-volume --out new-volume --key-file code.key --tag "$OLD_TAG" --accept-v1
        """)

    @Argument(help: "The volume to convert (directory or metadata file).") var volume: String
    @Option(name: .long, help: "Output volume directory (must not exist or be empty).") var out: String
    @OptionGroup var key: KeyOptions
    @OptionGroup var expected: TagOptions
    @Option(name: .long, help: "Output: line (SCONE's, awk $9 = tag), json, or env.") var format: ReportFormat = .line
    @Option(name: .long, help: "Variable prefix for --format env (PREFIX_TAG, PREFIX_FULL_TAG).") var envPrefix = "VOLUME"

    func run() throws {
        try reportingErrors {
            let keys = try key.required()
            // Format 1 under a tag only with --accept-v1, as everywhere: a key holder can give a
            // format-1 tree a format-2 volume's short tag, and converting would launder it.
            let reader = try expected.open(volume, keys: keys)
            let result = try VolumeWriter.convert(reader, output: out, keys: keys, options: WriterOptions())
            // The key is the one given: it is not printed again.
            let r = EncryptReport(metadataPath: result.metadataPath, tag: result.tag, keyHex: nil, files: result.files, bytes: result.bytes)
            Console.out(r.render(format, envPrefix: envPrefix))
        }
    }
}

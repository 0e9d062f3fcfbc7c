import ArgumentParser
import FSPFCore
import FSPFCommandLine
import FSPFCrypto
import FSPFSystem
import FSPFProvisioning
import Glibc

struct KeyOptions: ParsableArguments {
    @Option(name: .long, help: "Read the key (64 hex digits or 32 raw bytes) from this file.")
    var keyFile: String?

    @Option(name: .long, help: "Read the key (64 hex digits) from this environment variable.")
    var keyEnv: String?

    @Flag(name: .long, help: "Read the key from standard input.")
    var keyStdin = false

    var source: KeySource? {
        get throws {
            try KeySource.choose([("--key-file", keyFile.map(KeySource.file)), ("--key-env", keyEnv.map(KeySource.environment)),
                                  ("--key-stdin", keyStdin ? .standardInput : nil)])
        }
    }

    func required() throws -> VolumeKeys {
        guard let s = try source else {
            throw FSPFError.usage("a key is needed: --key-file PATH, --key-env NAME or --key-stdin")
        }
        return try VolumeKeys(key: s.load())
    }
}

/// A tag given for a volume that is not opened here (`keyserver register` records it).
struct TagValueOptions: ParsableArguments {
    @Option(name: .long, help: "Expected volume tag: the full tag (64 hex digits) or SCONE's short one (32); any other version is refused.")
    var tag: String?

    @Option(name: .long, help: "Read the expected tag from this environment variable.")
    var tagEnv: String?

    func expected() throws -> [UInt8]? { try expectedTag(hex: tag, environment: tagEnv) }
}

/// The tag a volume is opened under, and whether format 1 may open under it.
struct TagOptions: ParsableArguments {
    @OptionGroup var value: TagValueOptions

    @Flag(name: .customLong("accept-v1"), help: "Open a format-1 volume under --tag (its tag does not bind against key holders).")
    var acceptV1 = false

    func expected() throws -> [UInt8]? { try value.expected() }

    /// Opens the volume with the expected tag, warning once when it is a format-1 volume.
    func open(_ volume: String, keys: VolumeKeys) throws -> VolumeReader {
        let reader = try VolumeReader(path: volume, keys: keys, expectedTag: try expected(), acceptVersion1: acceptV1)
        if reader.version == .v1 { Console.error(FormatWarning.version1(reader.metadataPath)) }
        return reader
    }
}

struct ReportOptions: ParsableArguments {
    @Option(name: .long, help: "Output: line (SCONE's, awk $9 = tag, $11 = key), json, or env.")
    var format: ReportFormat = .line

    @Option(name: .long, help: "Variable prefix for --format env (PREFIX_KEY, PREFIX_TAG).")
    var envPrefix = "VOLUME"

    @Option(name: .long, help: "Write the key to this new file (mode 0600) and leave it off standard output.")
    var keyOut: String?

    @Flag(name: .long, help: "Replace an existing --key-out file (by default it is left alone: exit 73).")
    var replaceKeyOut = false

    func validate() throws {
        if replaceKeyOut && keyOut == nil { throw ValidationError("--replace-key-out goes with --key-out") }
    }
}

extension ReportFormat: ExpressibleByArgument {}

import ArgumentParser
import FSPFCore
import FSPFCrypto
import FSPFSystem
import FSPFProvisioning

// SCONE's step-by-step commands, same arguments and meaning, so `scone fspf` in a build
// script can be replaced by `fspf`.

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create an empty volume metadata file (a draft until 'fspf encrypt F').")

    @Argument(help: "Metadata file to create.") var file: String

    func run() throws {
        try reportingErrors { try Draft().save(file) }
    }
}

struct AddRegion: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "addr", abstract: "Add a region to a draft.")

    @Argument(help: "Draft metadata file.") var file: String
    @Argument(help: "Path of the region inside the volume ('/' or '.' is the root).") var embed: String
    @Flag(name: .long) var encrypted = false
    @Flag(name: .long) var authenticated = false
    @Flag(name: .long) var notProtected = false
    @Option(name: .long, help: "Directory on disk that holds the region's files.") var kernel: String?
    @Flag(name: .long, help: "In-memory regions (not supported).") var ephemeral = false
    @Option(name: .long, help: "Chunk length in bytes (power of two, 4096 to 16M).") var chunkLength: String?
    @Option(name: .long, help: "Key length: only 32 bytes (256 bits) is supported.") var keyLength: Int?

    func run() throws {
        try reportingErrors {
            let kinds = [(encrypted, RegionKind.encrypted), (authenticated, .authenticated), (notProtected, .notProtected)]
                .filter { $0.0 }.map { $0.1 }
            guard kinds.count == 1 else { throw FSPFError.usage("addr needs exactly one of --encrypted, --authenticated, --not-protected") }
            guard !ephemeral else { throw FSPFError.usage("--ephemeral regions are not supported; use --kernel DIR") }
            guard let kernel else { throw FSPFError.usage("addr needs --kernel DIR") }
            if let k = keyLength, k != 32 && k != 256 { throw FSPFError.usage("--key-length \(k): only 32 bytes (256 bits) is supported") }
            let chunk = try chunkLength.map { try parseSize($0, option: "--chunk-length") } ?? ChunkSize.default
            var draft = try Draft.load(file)
            try draft.addRegion(path: embed, kind: kinds[0], kernel: kernel, chunkSize: chunk)
            try draft.save(file)
        }
    }
}

struct AddFiles: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "addf",
        abstract: "Add the files of a directory to a draft.",
        discussion: "Their content is protected (and written to OUT, default: the region's --kernel directory) by 'fspf encrypt F'.")

    @Argument(help: "Draft metadata file.") var file: String
    @Argument(help: "Where the files appear inside the volume.") var embed: String
    @Argument(help: "Directory holding the plaintext files.") var source: String
    @Argument(help: "Directory receiving the protected files.") var output: String?

    func run() throws {
        try reportingErrors {
            var draft = try Draft.load(file)
            try draft.addFiles(embed: embed, source: source, output: output)
            try draft.save(file)
        }
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a draft or a sealed metadata file.")

    @Argument(help: "Metadata file or volume directory.") var file: String
    @Flag(name: .long, help: "Print only the volume tag.") var tag = false
    @OptionGroup var key: KeyOptions

    func run() throws {
        try reportingErrors {
            if !FileSystem.isDirectory(file) && Draft.isDraft(file) {
                guard !tag else { throw FSPFError.usage("\(file): a draft has no tag yet; run 'fspf encrypt \(file)'") }
                let d = try Draft.load(file)
                for r in d.regions { Console.out("region /\(r.path) \(r.kind.name) kernel \(r.kernel) chunk \(r.chunkSize)") }
                for s in d.sources { Console.out("files /\(s.embed) from \(s.source)" + (s.output.map { " to \($0)" } ?? "")) }
                return
            }
            let info = try VolumeInfo(path: file)
            if tag { Console.out(Hex.encode(info.header.tag.short)); return }
            info.publicLines.forEach(Console.out)
            if let source = try key.source {
                let reader = try VolumeReader(path: file, keys: try VolumeKeys(key: source.load()), acceptVersion1: true)
                VolumeInfo.contentLines(reader).forEach(Console.out)
                for e in reader.entries { Console.out(Listing.line(e, long: true)) }
            }
        }
    }
}

import ArgumentParser
import FSPFCore
import FSPFCommandLine
import FSPFCrypto
import FSPFSystem
import FSPFProvisioning

// SCONE's step-by-step commands, same arguments and meaning, so `scone fspf` in a build
// script can be replaced by `fspf`.

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a volume step by step: an empty metadata file (SCONE's 'fspf create').",
        discussion: """
        Example, the steps of a SCONE build script:
          fspf create fspf.pb
          fspf addr fspf.pb / --not-protected --kernel /
          fspf addr fspf.pb /fspf/encrypted-files --encrypted --kernel /fspf/encrypted-files
          fspf addf fspf.pb /fspf/encrypted-files /fspf/input/code /fspf/encrypted-files
          fspf encrypt fspf.pb > keytag.txt
        The volume key is chosen now (random, or given with a key option) and kept in F (mode 0600) \
        until 'fspf encrypt F' seals it; keep F's directory private until then. An existing F (a draft, a sealed \
        volume's metadata, any file) is left alone (exit 73) unless --replace.
        """)

    @Argument(help: "Metadata file to create.") var file: String
    @Flag(name: .long, help: "Replace an existing file at F.") var replace = false
    @OptionGroup var key: KeyOptions

    func run() throws {
        try reportingErrors {
            let keys = try key.source.map { try VolumeKeys(key: $0.load()) } ?? VolumeKeys.generate()
            let tag = try Draft(keys: keys).save(file, replacing: replace, flag: "--replace")
            Console.out("Created empty file system protection file in \(file). AES-GCM tag: \(tag)")
        }
    }
}

struct AddRegion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "addr", abstract: "Add a region to a metadata file in progress (SCONE's 'fspf addr').",
        discussion: """
        A file belongs to the region with the longest matching path; the kind is fixed for the files addf adds later.
        Examples:
          fspf addr fspf.pb / --not-protected --kernel /
          fspf addr fspf.pb /usr --authenticated --kernel /usr
          fspf addr fspf.pb /fspf/encrypted-files --encrypted --kernel /fspf/encrypted-files
        """)

    @Argument(help: "Metadata file made by 'fspf create'.") var file: String
    @Argument(help: "Path of the region as the workload sees it ('/' is the root).") var embed: String
    @Flag(name: [.customShort("e"), .long], help: "Encrypted and authenticated: ciphertext on disk.") var encrypted = false
    @Flag(name: [.customShort("a"), .long], help: "Authenticated: plaintext on disk, every read verified against tags kept in the metadata.") var authenticated = false
    @Flag(name: .long, help: "Not protected: plaintext, not verified (not served by fspf-mount --scone).") var notProtected = false
    @Option(name: .long, help: "Directory on disk that holds the region's files (addf's default output; what fspf-mount --scone mounts over).") var kernel: String?
    @Flag(name: .long, help: "Writable in the workload, never persisted (instead of --kernel): fspf-mount --scone serves it empty under a throw-away key.")
    var ephemeral = false
    @Option(name: .long, help: "Chunk length in bytes: a power of two from 4096 to 16M (default 16K).") var chunkLength: String?
    @Option(name: .long, help: "Key length in bytes (16, 24 or 32) or bits: FSPF always uses 256-bit keys, a shorter length is accepted and stronger keys are used.") var keyLength: Int?

    func run() throws {
        try reportingErrors {
            let kinds = [(encrypted, RegionKind.encrypted), (authenticated, .authenticated), (notProtected, .notProtected)]
                .filter { $0.0 }.map { $0.1 }
            guard kinds.count == 1 else { throw FSPFError.usage("addr needs exactly one of --encrypted (-e), --authenticated (-a), --not-protected") }
            if ephemeral && kernel != nil { throw FSPFError.usage("--ephemeral or --kernel DIR, not both: an ephemeral region has no directory on disk") }
            guard kernel != nil || ephemeral else { throw FSPFError.usage("addr needs --kernel DIR (or --ephemeral)") }
            if let k = keyLength, ![16, 24, 32, 128, 192, 256].contains(k) {
                throw FSPFError.usage("--key-length \(k): 16, 24 or 32 bytes (128, 192 or 256 bits)")
            }
            let chunk = try chunkLength.map { try ChunkSize.parse($0, option: "--chunk-length") } ?? ChunkSize.default
            var draft = try Draft.load(file)
            try draft.addRegion(path: embed, kind: kinds[0], kernel: kernel, chunkSize: chunk)
            let tag = try draft.save(file)
            Console.out("Added region \(embed) to file system protection file \(file) new AES-GCM tag: \(tag)")
        }
    }
}

struct AddFiles: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "addf",
        abstract: "Protect the files of a directory now and record them (SCONE's 'fspf addf').",
        discussion: """
        Encrypted files go to OUT (default: the region's --kernel directory) as objects under OUT/.fspf-objects; \
        authenticated ones stay where they are (copied to OUT if it differs) and their tags go into the metadata file. \
        Files that appear in SOURCE afterwards are not part of the volume. A path added again is replaced.
        Examples:
          fspf addf fspf.pb /fspf/encrypted-files /fspf/input/code /fspf/encrypted-files
          fspf addf fspf.pb /usr /usr
        """)

    @Argument(help: "Metadata file made by 'fspf create'.") var file: String
    @Argument(help: "Where the files appear to the workload.") var embed: String
    @Argument(help: "Directory holding the files.") var source: String
    @Argument(help: "Directory receiving encrypted files (and copies of the others).") var output: String?
    @Option(name: .long, help: "Worker threads (default: all cores).") var threads: Int?

    func run() throws {
        try reportingErrors {
            var options = WriterOptions()
            if let t = threads {
                guard t >= 1 else { throw FSPFError.usage("--threads must be at least 1") }
                options.threads = t
            }
            var draft = try Draft.load(file)
            let added = try draft.addFiles(embed: embed, source: source, output: output, draftPath: file, options: options)
            Console.out("Added files to file system protection file \(file) new AES-GCM tag: \(added.stepTag)")
        }
    }
}

struct AddFSPF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "addfspf",
        abstract: "SCONE's nested protection files: not supported (the message says what to use instead).",
        discussion: "Example of what to do instead: fspf-mount --scone --fspf G (G on its own), or fspf addf F EMBED SOURCE for G's sources.")

    @Argument(help: "Metadata file.") var file: String
    @Argument(parsing: .captureForPassthrough, help: "The protection file to nest (and its key, which fspf never takes on a command line).")
    var rest: [String] = []

    func run() throws {
        try reportingErrors {
            throw FSPFError.usage("addfspf: nested protection files are not supported; mount the other volume on its own "
                                  + "(fspf-mount --scone --fspf G) or add its source directories to \(file) with fspf addf")
        }
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a metadata file in progress, or a sealed one (SCONE's 'fspf show').",
        discussion: """
        Examples:
          fspf show fspf.pb                      regions and files recorded so far, or what the volume shows without a key
          fspf show --tag /fspf.pb               the volume tag alone (SCONE_FSPF_TAG)
          fspf show encrypted-files --key-file k  contents too
        """)

    @Argument(help: "Metadata file or volume directory.") var file: String
    @Flag(name: .long, help: "Print only the volume tag.") var tag = false
    @OptionGroup var key: KeyOptions

    func run() throws {
        try reportingErrors {
            if !FileSystem.isDirectory(file) && Draft.isDraft(file) {
                guard !tag else { throw FSPFError.usage("\(file): a draft has no tag yet; run 'fspf encrypt \(file)'") }
                let d = try Draft.load(file)
                for r in d.regions {
                    Console.out("region /\(r.path) \(r.kind.name) \(r.ephemeral == true ? "ephemeral" : "kernel \(r.kernel)") chunk \(r.chunkSize)")
                }
                for e in try d.entries { Console.out(Listing.line(e, long: true)) }
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

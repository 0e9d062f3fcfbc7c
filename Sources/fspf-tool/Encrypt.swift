import ArgumentParser
import FSPFCore
import FSPFCommandLine
import FSPFCrypto
import FSPFSystem
import FSPFProvisioning
import Glibc

struct Encrypt: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encrypt a directory into a volume, or seal a step-built metadata file.",
        discussion: """
        fspf encrypt DIR --out VOLUME     one command from a plaintext tree to a volume
        fspf encrypt F                    seal the metadata file F built with create/addr/addf (as scone fspf encrypt)
        Without a key option a new random key is generated and printed (for F: the key chosen at create).
        Examples:
          fspf encrypt input/code --out encrypted-files > keytag.txt
          fspf encrypt input/data --out encrypted-data --key-out data.key --format env --env-prefix DATA_FSPF
          fspf encrypt fspf.pb > keytag.txt
        """)

    @Argument(help: "Input directory, or a draft metadata file made by 'fspf create'.")
    var input: String

    @Option(name: .long, help: "Output volume directory (must not exist or be empty).")
    var out: String?

    @Option(name: .long, help: "Store this path (relative to the input) as authenticated: plaintext on disk, every read verified.")
    var authenticated: [String] = []

    @Option(name: .long, help: "Store this path as not protected: plaintext, unverified.")
    var notProtected: [String] = []

    @Option(name: .long, help: "Store this path as encrypted (the default for the root).")
    var encrypted: [String] = []

    @Option(name: .long, help: "Chunk size, a power of two from 4K to 16M (default 16K).")
    var chunkSize: String?

    @Flag(name: .long, help: "Same key and same input give a byte-identical volume and tag.")
    var reproducible = false

    @Option(name: .long, help: ArgumentHelp("Leave out files and directories matching this pattern (repeatable).",
        discussion: "A pattern with a '/' matches the path below the input (a leading '/' anchors it there), one without a name at any depth; * ? [ ] as in the shell."))
    var exclude: [String] = []

    @Flag(name: .long, help: "Do not record extended attributes (by default every one is kept, security.capability included).")
    var noXattrs = false

    @Flag(name: .long, help: "Store holes of sparse files like data (by default they stay holes, which shows where they are on disk).")
    var dense = false

    @Option(name: .long, help: "Worker threads (default: all cores).")
    var threads: Int?

    @Flag(name: .long, help: "No progress display.")
    var quiet = false

    @OptionGroup var key: KeyOptions
    @OptionGroup var report: ReportOptions
    @OptionGroup(title: "Key server registration") var registration: RegistrationOptions

    func run() throws {
        try reportingErrors {
            var options = WriterOptions()
            if let c = chunkSize { options.chunkSize = try ChunkSize.parse(c, option: "--chunk-size") }
            options.reproducible = reproducible
            options.excludes = exclude
            options.xattrs = !noXattrs
            options.sparse = !dense
            if reproducible, let epoch = getenv("SOURCE_DATE_EPOCH"), let t = Int64(String(cString: epoch)) {
                options.reproducibleTime = t
            }
            if let t = threads {
                guard t >= 1 else { throw FSPFError.usage("--threads must be at least 1") }
                options.threads = t
            }
            guard FileSystem.exists(input) else { throw FSPFError.noInput(path: input, reason: "no such file or directory") }
            let registering = try registration.prepare(defaultName: out.map { String($0.split(separator: "/").last ?? "") })
            let given = try key.source.map { try VolumeKeys(key: $0.load()) }
            let display = ProgressDisplay.startIfTerminal(quiet: quiet)
            options.progress = display?.progress
            defer { display?.stop() }
            let result: WriteResult
            let keys: VolumeKeys
            if FileSystem.isDirectory(input) {
                guard let out else { throw FSPFError.usage("encrypting a directory needs --out VOLUME") }
                for (paths, kind) in [(encrypted, RegionKind.encrypted), (authenticated, .authenticated), (notProtected, .notProtected)] {
                    for p in paths {
                        options.regions.append(Region(path: try Paths.normalize(p), kind: kind, chunkSize: options.chunkSize))
                    }
                }
                keys = given ?? VolumeKeys.generate()
                result = try writingKeyFirst(keys) { try VolumeWriter.encrypt(input: input, output: out, keys: keys, options: options) }
            } else {
                guard out == nil, authenticated.isEmpty, notProtected.isEmpty, encrypted.isEmpty else {
                    throw FSPFError.usage("\(input) is a file: fspf encrypt DIR --out VOLUME encrypts a directory (put the file in one); "
                                          + "a file argument is a metadata file of SCONE's steps (fspf create, addr, addf), without --out or region options")
                }
                let draft = try Draft.load(input)
                if let refused = [(chunkSize != nil, "--chunk-size (give addr --chunk-length)"), (reproducible, "--reproducible"),
                                  (!exclude.isEmpty, "--exclude"), (noXattrs, "--no-xattrs"), (dense, "--dense")].first(where: { $0.0 }) {
                    throw FSPFError.usage("\(refused.1): the files of \(input) were protected by addf already; "
                                          + "for these options use fspf encrypt DIR --out VOLUME")
                }
                keys = try draft.keys
                if let given, !given.key.equals(keys.key) {
                    throw FSPFError.usage("\(input): its files were encrypted by addf under the key chosen at 'fspf create'; "
                                          + "give the key to 'fspf create \(input)' instead")
                }
                result = try writingKeyFirst(keys) { try draft.seal(to: input) }
            }
            display?.stop()  // the line is cleared before the report goes to the same terminal
            if let path = report.keyOut, report.replaceKeyOut { try writeKeyFile(path, keys.key, replacing: true, flag: "") }
            let registered = try registering?.perform(key: keys.key, tag: result.tag.full)
            // A key handed to the key server stays off standard output.
            let r = EncryptReport(metadataPath: result.metadataPath, tag: result.tag,
                                  keyHex: report.keyOut == nil && registered == nil ? keys.key.hex : nil,
                                  files: result.files, bytes: result.bytes)
            Console.out(r.render(report.format, envPrefix: report.envPrefix))
        }
    }

    /// A new --key-out file is made before the volume (an existing one refuses the command
    /// before anything is written: a volume whose key went nowhere would be lost) and removed
    /// if writing the volume fails. With --replace-key-out the old file is replaced only once
    /// the volume is written.
    func writingKeyFirst(_ keys: VolumeKeys, _ write: () throws -> WriteResult) throws -> WriteResult {
        guard let path = report.keyOut, !report.replaceKeyOut else { return try write() }
        try writeKeyFile(path, keys.key, replacing: false, flag: "--replace-key-out")
        do { return try write() } catch {
            unlink(path)
            throw error
        }
    }
}


import ArgumentParser
import FSPFCore
import FSPFCommandLine
import FSPFCrypto
import FSPFSystem
import FSPFProvisioning
import Glibc

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every byte of a volume; list every problem with file, chunk and byte range.",
        discussion: ExitStatus.help([0, 10, 11, 12, 64, 65, 66, 74], saying: [0: "intact", 10: "anything wrong (every problem listed)"])
            + """

        Examples:
          fspf verify encrypted-files --key-file code.key --tag "$TAG"
          fspf verify /fspf/fspf-file --key-env SCONE_FSPF_KEY --tag-env SCONE_FSPF_TAG   the directory of fs.fspf
        """)

    @Argument(help: "Volume directory or metadata file.") var volume: String
    @OptionGroup var key: KeyOptions
    @OptionGroup var expected: TagOptions
    @Flag(name: .long, help: "Print only problems.") var quiet = false

    func run() throws {
        try reportingErrors {
            let tag = try expected.expected()
            let reader = try expected.open(volume, keys: try key.required())
            let report = Verifier.verify(reader)
            for p in report.problems { Console.error(p.description) }
            if !report.unsealed.isEmpty {
                Console.error("note: \(report.unsealed.count) object(s) of an unsealed version in \(Paths.parent(Paths.parent(report.unsealed[0]))) "
                              + "(a read-write mount stopped before sealing them): never read; the next read-write mount removes them")
            }
            if !report.ok {
                throw FSPFError.integrity(path: reader.metadataPath, reason: "\(report.problems.count) problem(s) found")
            }
            if !quiet {
                Console.out("OK \(reader.metadataPath): \(report.filesChecked) files, \(report.chunksChecked) chunks, "
                            + "\(report.bytesChecked) bytes verified; tag \(Hex.encode(reader.tag.short))"
                            + (reader.version == .v1 ? "" : ", full tag \(Hex.encode(reader.tag.full))"))
                if tag == nil {
                    Console.error("warning: no --tag given: a complete older version of the volume would also verify")
                }
            }
        }
    }
}

enum Listing {
    static func line(_ e: Entry, long: Bool) -> String {
        let name = e.isDirectory ? e.path + "/" : e.path
        guard long else { return name }
        let type: String
        var suffix = ""
        switch e.content {
        case .directory: type = "d"
        case .symlink(let t): type = "l"; suffix = " -> " + String(decoding: t, as: UTF8.self)
        case .file(_, let r, _, _): type = r == .encrypted ? "e" : r == .authenticated ? "a" : "-"
        }
        let mode = String(e.mode, radix: 8)
        return "\(type) \(String(repeating: "0", count: max(0, 4 - mode.count)) + mode) \(String(e.size).leftPadded(12)) \(name)\(suffix)"
    }
}

extension String {
    func leftPadded(_ n: Int) -> String { String(repeating: " ", count: max(0, n - count)) + self }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List a volume's files.",
        discussion: """
        Long format: type (d directory, e encrypted, a authenticated, - not protected, l symlink), mode, size, path.
        Examples:
          fspf ls -lR encrypted-files --key-file code.key
          fspf ls /fspf.pb app --key-env SCONE_FSPF_KEY --tag-env SCONE_FSPF_TAG
        """)

    @Argument(help: "Volume directory or metadata file.") var volume: String
    @Argument(help: "Directory inside the volume.") var path = "/"
    @Flag(name: .shortAndLong, help: "Long format.") var long = false
    @Flag(name: [.customShort("R"), .long], help: "Recurse.") var recursive = false
    @OptionGroup var key: KeyOptions
    @OptionGroup var expected: TagOptions

    func run() throws {
        try reportingErrors {
            let reader = try expected.open(volume, keys: try key.required())
            let base = try Paths.normalize(path)
            if recursive {
                for e in reader.entries where Paths.isWithin(e.path, base) && e.path != base {
                    Console.out(Listing.line(e, long: long))
                }
            } else {
                for e in try reader.list(base) { Console.out(Listing.line(e, long: long)) }
            }
        }
    }
}

struct Cat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a file of a volume to standard output, verified.",
        discussion: """
        Example:
          fspf cat encrypted-files job.py --key-file code.key --tag "$TAG"
        """)

    @Argument(help: "Volume directory or metadata file.") var volume: String
    @Argument(help: "File inside the volume.") var path: String
    @OptionGroup var key: KeyOptions
    @OptionGroup var expected: TagOptions

    func run() throws {
        try reportingErrors {
            let reader = try expected.open(volume, keys: try key.required())
            guard let i = try reader.entryIndex(path) else { throw FSPFError.badInput(path: path, reason: "is a directory") }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
            defer { buffer.deallocate() }
            var offset: UInt64 = 0
            while true {
                let n = try reader.read(entry: i, offset: offset, into: buffer)
                if n == 0 { break }
                var done = 0
                while done < n {
                    let w = Glibc.write(1, buffer.baseAddress! + done, n - done)
                    if w < 0 {
                        if errno == EINTR { continue }
                        throw FSPFError.io(path: "standard output", operation: "write", errno: errno)
                    }
                    done += w
                }
                offset += UInt64(n)
            }
        }
    }
}

struct Decrypt: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a volume's verified plaintext tree to a new directory.",
        discussion: """
        Example:
          fspf decrypt encrypted-files --out plain --key-file code.key --tag "$TAG"
        """)

    @Argument(help: "Volume directory or metadata file.") var volume: String
    @Option(name: .long, help: "Output directory (must not exist).") var out: String
    @OptionGroup var key: KeyOptions
    @OptionGroup var expected: TagOptions

    func run() throws {
        try reportingErrors {
            let reader = try expected.open(volume, keys: try key.required())
            try Exporter.decrypt(reader, to: out)
        }
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What a volume reveals without the key, and its contents with it.",
        discussion: """
        Examples:
          fspf info encrypted-files                       header, tags, object count: no key needed
          fspf info encrypted-files --key-file code.key   contents and regions too
        """)

    @Argument(help: "Volume directory or metadata file.") var volume: String
    @OptionGroup var key: KeyOptions

    func run() throws {
        try reportingErrors {
            let info = try VolumeInfo(path: volume)
            info.publicLines.forEach(Console.out)
            if let source = try key.source {
                VolumeInfo.contentLines(try VolumeReader(path: volume, keys: try VolumeKeys(key: source.load()), acceptVersion1: true))
                    .forEach(Console.out)
            }
        }
    }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate a random volume key (64 hex digits).",
        discussion: """
        Examples:
          fspf keygen --out code.key && fspf encrypt input/code --out encrypted-files --key-file code.key
        """)

    @Option(name: .long, help: "Write the key to this new file (mode 0600) instead of standard output.") var out: String?
    @Flag(name: .long, help: "Replace an existing --out file (by default it is left alone: exit 73).") var replace = false

    func validate() throws {
        if replace && out == nil { throw ValidationError("--replace goes with --out") }
    }

    func run() throws {
        try reportingErrors {
            let keys = VolumeKeys.generate()
            if let out { try writeKeyFile(out, keys.key, replacing: replace, flag: "--replace") } else { Console.out(keys.key.hex) }
        }
    }
}

import Foundation
import FSPFCrypto
import FSPFSystem

/// A volume being built step by step, as SCONE build scripts do:
/// `create F` → `addr F EMBED --encrypted --kernel DIR` → `addf F EMBED SRC [OUT]` →
/// `encrypt F`. The draft lists regions and sources; `encrypt F` does the work and replaces
/// F by the sealed metadata. Content is encrypted at that last step because every content
/// key derives from the volume key, which exists only then.
public struct Draft: Codable, Equatable, Sendable {
    public static let formatName = "fspf-draft-1"

    public struct DraftRegion: Codable, Equatable, Sendable {
        public var path: String
        public var kind: RegionKind
        public var kernel: String
        public var chunkSize: UInt32
    }

    public struct DraftSource: Codable, Equatable, Sendable {
        public var embed: String
        public var source: String
        public var output: String?
    }

    public var format = Draft.formatName
    public var regions: [DraftRegion] = []
    public var sources: [DraftSource] = []

    public init() {}

    public static func isDraft(_ path: String) -> Bool {
        guard let bytes = try? FileSystem.readAll(path, limit: 1 << 26) else { return false }
        return bytes.first(where: { $0 != 0x20 && $0 != 0x0a }) == UInt8(ascii: "{")
    }

    public static func load(_ path: String) throws -> Draft {
        guard FileSystem.exists(path) else { throw FSPFError.noInput(path: path, reason: "no such file (run 'fspf create' first)") }
        let bytes = try FileSystem.readAll(path, limit: 1 << 26)
        guard let d = try? JSONDecoder().decode(Draft.self, from: Data(bytes)), d.format == formatName else {
            throw FSPFError.badInput(path: path, reason: "not a metadata file in progress (made by 'fspf create' and not yet encrypted); to encrypt a directory: fspf encrypt DIR --out VOLUME")
        }
        return d
    }

    public func save(_ path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try enc.encode(self)
        try FileSystem.writeAtomically(path, Array(data) + [0x0a], mode: 0o600)
    }

    public mutating func addRegion(path: String, kind: RegionKind, kernel: String, chunkSize: UInt32) throws {
        let p = try Paths.normalize(path)
        guard ChunkSize.isValid(chunkSize) else {
            throw FSPFError.usage("chunk length \(chunkSize): must be a power of two from \(ChunkSize.minimum) to \(ChunkSize.maximum)")
        }
        regions.removeAll { $0.path == p }
        regions.append(DraftRegion(path: p, kind: kind, kernel: Plan.absolute(kernel), chunkSize: chunkSize))
    }

    public mutating func addFiles(embed: String, source: String, output: String?) throws {
        guard FileSystem.isDirectory(source) else {
            throw FSPFError.noInput(path: source, reason: "no such directory")
        }
        sources.append(DraftSource(embed: try Paths.normalize(embed), source: Plan.absolute(source),
                                   output: output.map(Plan.absolute)))
    }

    /// Writer inputs: each source's output defaults to the kernel directory of its region.
    public func writerInputs(defaultChunkSize: UInt32) -> (sources: [WriterSource], regions: [Region]) {
        let regions = self.regions.map { Region(path: $0.path, kind: $0.kind, chunkSize: $0.chunkSize) }
        let withRoot = regions.contains { $0.path.isEmpty } ? regions
            : regions + [Region(path: "", kind: .encrypted, chunkSize: defaultChunkSize)]
        let sources = self.sources.map { s -> WriterSource in
            let kernel = self.regions.filter { Paths.isWithin(s.embed, $0.path) }
                .max { $0.path.utf8.count < $1.path.utf8.count }?.kernel
            return WriterSource(directory: s.source, prefix: s.embed, output: s.output ?? kernel ?? ".")
        }
        return (sources, withRoot)
    }
}

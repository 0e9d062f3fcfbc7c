import Foundation
import Glibc
import FSPFCrypto
import FSPFSystem

/// A volume built step by step, as SCONE build scripts do: `create F` → `addr F EMBED
/// --encrypted --kernel DIR` → `addf F EMBED SRC [OUT]` → `encrypt F`.
///
/// As with SCONE, `addf` reads, encrypts or authenticates and records the files *when it
/// runs*: what it saw is what `encrypt F` seals, whatever appears in SRC afterwards (a
/// `keytag` file written there by `encrypt F > SRC/keytag` included). The volume key is
/// chosen at `create` and kept in the draft (mode 0600) until `encrypt F` replaces the draft
/// by the sealed metadata, which is why every content key can already be derived at `addf`
/// (FORMAT.md §2, "Volumes built step by step"). Authenticated files keep their tag trees in
/// the draft, later in the metadata: nothing is written into their directory.
public struct Draft: Codable, Sendable {
    public static let formatName = "fspf-draft-2"

    public struct DraftRegion: Codable, Equatable, Sendable {
        public var path: String
        public var kind: RegionKind
        public var kernel: String
        public var chunkSize: UInt32
        /// nil in drafts made before ephemeral regions.
        public var ephemeral: Bool?
    }

    private enum CodingKeys: String, CodingKey { case format, key, regions, objects, stores }

    public var format = Draft.formatName
    /// The volume key, hex.
    var key: String
    public private(set) var regions: [DraftRegion] = []
    /// Entries recorded so far: a metadata encoding (its regions unused), stored after the JSON.
    var recorded: [UInt8]? = nil
    /// Objects this draft wrote (absolute paths), and the object stores they are in.
    var objects: [String] = []
    var stores: [String] = []

    public init(keys: VolumeKeys) {
        key = keys.key.hex
    }

    public var keys: VolumeKeys {
        get throws {
            guard var raw = Hex.decode(key) else { throw FSPFError.badInput(path: "draft", reason: "its key is not hex") }
            return try VolumeKeys(key: SecureBytes(consuming: &raw))
        }
    }

    public var entries: [Entry] { get throws { try recordedMetadata()?.entries ?? [] } }

    /// A draft's file starts with its JSON line (a sealed one with the volume magic).
    public static func isDraft(_ path: String) -> Bool {
        guard let fd = try? FileDescriptor.openForReading(path) else { return false }
        var first: UInt8 = 0
        let n = (try? withUnsafeMutableBytes(of: &first) { try fd.read(into: $0, at: 0) }) ?? 0
        return n == 1 && first == UInt8(ascii: "{")
    }

    /// The file: one line of JSON (key, regions, objects), then the recorded entries' binary
    /// metadata encoding, if any.
    public static func load(_ path: String) throws -> Draft {
        guard FileSystem.exists(path) else { throw FSPFError.noInput(path: path, reason: "no such file (run 'fspf create' first)") }
        let bytes = try FileSystem.readAll(path, limit: 1 << 30)
        let newline = bytes.firstIndex(of: 0x0a) ?? bytes.endIndex
        if var d = try? JSONDecoder().decode(Draft.self, from: Data(bytes[..<newline])), d.format == formatName {
            if newline + 1 < bytes.endIndex { d.recorded = Array(bytes[(newline + 1)...]) }
            return d
        }
        if bytes.starts(with: SealedMetadata.magic) {
            throw FSPFError.badInput(path: path, reason: "already sealed by 'fspf encrypt'; start again with 'fspf create \(path)'")
        }
        throw FSPFError.badInput(path: path, reason: "not a metadata file in progress (made by 'fspf create' and not yet encrypted); "
                                 + "to encrypt a directory: fspf encrypt DIR --out VOLUME")
    }

    /// Saves the draft atomically (mode 0600) and returns what SCONE prints as the protection
    /// file's tag after each step: the first 16 bytes of SHA-256 over the file (it changes with
    /// every step; only the tag `encrypt F` prints is a volume tag). `replacing`: false for a
    /// new draft (`create`), which leaves an existing file alone (`.fileExists` naming `flag`).
    @discardableResult
    public func save(_ path: String, replacing: Bool = true, flag: String = "") throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let bytes = Array(try enc.encode(self)) + [0x0a] + (recorded ?? [])
        try FileSystem.writeForUser(path, bytes, mode: 0o600, replacing: replacing, flag: flag)
        var h = SHA256()
        h.update(Array("FSPF-DRAFT".utf8) + [0])
        h.update(bytes)
        return Hex.encode(h.finish().prefix(16))
    }

    // MARK: Steps

    /// `kernel` nil: an ephemeral region (writable in the workload, never persisted).
    public mutating func addRegion(path: String, kind: RegionKind, kernel: String?, chunkSize: UInt32) throws {
        let p = try Paths.normalize(path)
        guard ChunkSize.isValid(chunkSize) else {
            throw FSPFError.usage("chunk length \(chunkSize): must be a power of two from \(ChunkSize.minimum) to \(ChunkSize.maximum)")
        }
        if kernel == nil {
            guard !p.isEmpty else { throw FSPFError.usage("/ cannot be an ephemeral region: SCONE's runtime serves it from the disk") }
            if let inner = regions.first(where: { $0.path != p && Paths.isWithin($0.path, p) }) {
                throw FSPFError.usage("/\(p) cannot be ephemeral: it holds the region /\(inner.path)")
            }
            if let added = try entries.first(where: { Paths.isWithin($0.path, p) }) {
                throw FSPFError.usage("/\(p) cannot be ephemeral: addf recorded /\(added.path) there, and an ephemeral region starts empty")
            }
        }
        if let outer = regions.first(where: { $0.ephemeral == true && $0.path != p && Paths.isWithin(p, $0.path) }) {
            throw FSPFError.usage("/\(p) lies in the ephemeral region /\(outer.path), which holds no other region")
        }
        regions.removeAll { $0.path == p }
        regions.append(DraftRegion(path: p, kind: kind, kernel: kernel.map(Paths.normalized) ?? "", chunkSize: chunkSize,
                                   ephemeral: kernel == nil ? true : nil))
    }

    /// Protects the files below `source` now, as they are, into `output` (default: the
    /// kernel directory of the region `embed` lies in) and records them under `embed`. A path
    /// recorded before is replaced (its object removed); a file where a directory was, or the
    /// reverse, is refused. On failure the draft and the disk are as before.
    public mutating func addFiles(embed: String, source: String, output: String?, draftPath: String,
                                  options: WriterOptions) throws -> (files: Int, bytes: UInt64, stepTag: String) {
        guard FileSystem.isDirectory(source) else {
            throw FSPFError.noInput(path: source, reason: "no such directory")
        }
        let prefix = try Paths.normalize(embed)
        let regions = writerRegions
        let target = Region.of(prefix, in: regions)
        if target.ephemeral {
            throw FSPFError.usage("/\(prefix) lies in the ephemeral region /\(target.path): it starts empty in every run, nothing can be added to it")
        }
        let kernel = self.regions.filter { Paths.isWithin(prefix, $0.path) && $0.ephemeral != true }
            .max { $0.path.utf8.count < $1.path.utf8.count }?.kernel
        // Through symbolic links to their directories (Debian's /lib -> usr/lib): the reader
        // follows no link, so the locations recorded must not pass through one.
        let named = Paths.normalized(output ?? kernel ?? ".")
        let out = FileSystem.resolved(named) ?? named
        let source = FileSystem.resolved(source) ?? source
        let keys = try self.keys
        var o = options
        o.regions = regions
        o.reproducible = false
        o.inlineTrees = true
        let done = try VolumeWriter.protect(sources: [WriterSource(directory: source, prefix: prefix, output: out)],
                                            metadataPath: draftPath, keys: keys, options: o)
        let before = self
        var stale: [String] = []
        var tag = ""
        do {
            try merge(done, prefix: prefix)
            if !done.objects.isEmpty {
                let store = Paths.join(out, ObjectStore.directoryName)
                if !stores.contains(store) { stores.append(store) }
            }
            let keep = Set(referencedObjects(try entries, base: Paths.parent(Paths.normalized(draftPath))))
            stale = (objects + done.objects).filter { !keep.contains($0) }
            objects = (objects + done.objects).filter { keep.contains($0) }
            tag = try save(draftPath)
        } catch {
            Draft.remove(done.objects)
            self = before
            throw error
        }
        Draft.remove(stale)  // replaced files' objects, once the draft no longer names them
        return (done.files, done.bytes, tag)
    }

    /// Seals what the steps recorded into `path` (replacing the draft), then removes every
    /// object in this draft's object stores that the volume does not reference: leftovers of
    /// earlier builds into the same directories (`rm -rf DIR/*` keeps the hidden store).
    public func seal(to path: String) throws -> WriteResult {
        let keys = try self.keys
        let regions = writerRegions
        let recorded = try recordedMetadata()
        let metadata = VolumeMetadata(version: .current, reproducible: false, regions: regions,
                                      root: recorded?.root, entries: recorded?.entries ?? [])
        // The steps may have combined regions and links in a way the format refuses (a region
        // changed by addr after addf linked two paths): check before anything is replaced.
        _ = try VolumeMetadata.decode(metadata.encoded(), context: path)
        // The stores the cleanup walks, opened first: one that is not a real directory (a link
        // planted in its place) is refused before anything is replaced.
        let opened = try stores.compactMap { store -> ObjectStore? in
            guard let base = try? Directory.open(Paths.parent(store)) else { return nil }
            return try ObjectStore.open(in: base, create: false)
        }
        let tag = try VolumeWriter.seal(metadata, to: (try Directory.open(Paths.parent(path)), Paths.lastComponent(path)), keys: keys)
        let referenced = referencedObjects(metadata.entries, base: Paths.parent(Paths.normalized(path)))
        let known = ObjectStores(metadataDirectory: nil)
        for store in opened { store.prune(keeping: known.names(in: store, of: referenced)) }
        let files = metadata.entries.filter { $0.isFile && $0.linkOf == nil }
        return WriteResult(metadataPath: path, tag: tag, files: files.count, bytes: files.reduce(0) { $0 + $1.size })
    }

    // MARK: Internals

    /// Regions as the writer and the format take them: sorted, the root encrypted unless given.
    private var writerRegions: [Region] {
        Region.normalized(regions.map { Region(path: $0.path, kind: $0.kind, chunkSize: $0.chunkSize, ephemeral: $0.ephemeral ?? false) },
                          rootChunkSize: ChunkSize.default)
    }

    private func recordedMetadata() throws -> VolumeMetadata? {
        guard let recorded else { return nil }
        return try VolumeMetadata.decode(recorded, context: "draft")
    }

    /// Adds newly protected entries to the recorded ones (`prefix` is where they were added).
    /// Hard links are groups of paths; the first path of each group, in path order, holds the
    /// content and the others link to it (the format links only to earlier entries).
    private mutating func merge(_ done: VolumeWriter.Protected, prefix: String) throws {
        let old = try recordedMetadata()
        var byPath: [String: Entry] = [:]
        var owner: [String: String] = [:]  // path of a link -> a path of its group holding the content
        for e in old?.entries ?? [] {
            var e = e
            if let k = e.linkOf { owner[e.path] = old!.entries[k].path; e.linkOf = nil }
            byPath[e.path] = e
        }
        for n in done.entries {
            var n = n
            if let existing = byPath[n.path] {
                switch (existing.isDirectory, n.isDirectory) {
                case (true, true): continue  // a shared directory keeps its first attributes
                case (false, false):
                    // Replaced: its group's other paths keep the old content.
                    owner[n.path] = nil
                    let members = owner.filter { $0.value == n.path }.keys.sorted()
                    if let heir = members.first {
                        owner[heir] = nil
                        for m in members.dropFirst() { owner[m] = heir }
                    }
                default:
                    throw FSPFError.badInput(path: n.path, reason: "two inputs map to the volume path '\(n.path)' "
                                             + "(a \(existing.isDirectory ? "directory" : "file") before, a \(n.isDirectory ? "directory" : "file") now)")
                }
            }
            if let k = n.linkOf { owner[n.path] = done.entries[k].path; n.linkOf = nil }
            byPath[n.path] = n
        }
        var sorted = byPath.map { (key: Array($0.key.utf8), entry: $0.value) }.sorted { Paths.precedes($0.key, $1.key) }.map(\.entry)
        var index: [String: Int] = [:]
        for (i, e) in sorted.enumerated() { index[e.path] = i }
        var groups: [String: [Int]] = [:]
        for (path, o) in owner { groups[o, default: [index[o]!]].append(index[path]!) }
        for members in groups.values {
            let holder = members.min()!
            for i in members where i != holder {
                sorted[i].content = sorted[holder].content
                sorted[i].linkOf = holder
            }
        }
        // The root's attributes come from a source added at the root; otherwise they stay.
        let root = prefix.isEmpty ? done.root : old?.root ?? done.root
        let metadata = VolumeMetadata(version: .current, reproducible: false, regions: writerRegions, root: root, entries: sorted)
        recorded = metadata.encoded()
    }

    private func referencedObjects(_ entries: [Entry], base: String) -> [String] {
        entries.compactMap { $0.storedObject.map { $0.hasPrefix("/") ? $0 : Paths.join(base, $0) } }
    }

    /// Removes objects (absolute paths) through their stores' descriptors.
    private static func remove(_ objects: [String]) {
        let known = ObjectStores(metadataDirectory: nil)
        for o in objects { known.remove(o) }
    }
}

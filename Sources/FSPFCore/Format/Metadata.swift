import FSPFCrypto
import FSPFSystem

/// Regions as in SCONE: a file belongs to the region with the longest matching path prefix.
public enum RegionKind: UInt8, Sendable, CaseIterable, Codable {
    case encrypted = 1
    case authenticated = 2
    case notProtected = 3

    public var name: String {
        switch self {
        case .encrypted: return "encrypted"
        case .authenticated: return "authenticated"
        case .notProtected: return "not-protected"
        }
    }
}

public struct Region: Equatable, Sendable, Codable {
    /// Normalised volume path ("" is the root).
    public var path: String
    public var kind: RegionKind
    public var chunkSize: UInt32
    /// SCONE's `--ephemeral`: writable in the workload, never persisted; the volume records no
    /// file in it, and `fspf-mount --scone` serves it as a fresh volume under a throw-away key.
    public var ephemeral: Bool

    public init(path: String, kind: RegionKind, chunkSize: UInt32, ephemeral: Bool = false) {
        self.path = path
        self.kind = kind
        self.chunkSize = chunkSize
        self.ephemeral = ephemeral
    }

    /// The region byte: the kind, with bit 7 set for an ephemeral region.
    static let ephemeralBit: UInt8 = 0x80

    /// The region of `path`: longest matching prefix, component-wise. `regions` always
    /// contains the root region.
    /// Regions as a volume records them: sorted by path bytes, with an encrypted root region
    /// of `chunkSize` unless one is given.
    static func normalized(_ regions: [Region], rootChunkSize: UInt32) -> [Region] {
        var r = regions
        if !r.contains(where: { $0.path.isEmpty }) { r.append(Region(path: "", kind: .encrypted, chunkSize: rootChunkSize)) }
        return r.sorted { Paths.precedes(Array($0.path.utf8), Array($1.path.utf8)) }
    }

    public static func of(_ path: String, in regions: [Region]) -> Region {
        var best: Region? = nil
        for r in regions where Paths.isWithin(path, r.path) {
            if best == nil || r.path.utf8.count > best!.path.utf8.count { best = r }
        }
        return best!
    }
}

/// A run of chunks that are holes: never written, read as zeros (docs/FORMAT.md §7).
public struct HoleSpan: Equatable, Sendable {
    public var first: UInt64
    public var count: UInt64
    public init(first: UInt64, count: UInt64) { self.first = first; self.count = count }
    public var end: UInt64 { first + count }
}

extension Array where Element == HoleSpan {
    /// SEEK_DATA (`data`) or SEEK_HOLE from `offset` in a file of `size` whose chunks of `chunkSize`
    /// in these spans are holes; nil (ENXIO) when no data follows. `offset` is below `size`.
    public func seek(from offset: UInt64, size: UInt64, chunkSize: UInt64, data: Bool) -> UInt64? {
        // The hole span containing `offset`, or the first one after it.
        let i = firstIndex { $0.end * chunkSize > offset }
        if data {
            guard let i, self[i].first * chunkSize <= offset else { return offset }
            let next = self[i].end * chunkSize
            return next < size ? next : nil
        }
        guard let i else { return size }
        return Swift.max(offset, self[i].first * chunkSize)
    }

    /// Whether chunk `c` lies in one of these sorted spans (binary search).
    func containsChunk(_ c: UInt64) -> Bool {
        if isEmpty { return false }
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if self[mid].end <= c { lo = mid + 1 } else { hi = mid }
        }
        return lo < count && self[lo].first <= c
    }
}

/// A chunk of an encrypted file that was encrypted again after its first write, by a read-write
/// mount: its nonce carries `generation` (docs/FORMAT.md §5, §9). Chunks not listed have
/// generation 0.
public struct ChunkGeneration: Equatable, Sendable {
    public var chunk: UInt64
    public var generation: UInt32
    public init(chunk: UInt64, generation: UInt32) { self.chunk = chunk; self.generation = generation }
}

/// The protection record of an encrypted or authenticated file.
public struct ProtectedFile: Equatable, Sendable {
    public static let idSize = 32

    public var version: FormatVersion
    public var kind: ChunkKind
    public var chunkSize: UInt32
    /// Bytes of data the chunks cover: the Padmé-padded size for encrypted files, the file
    /// size for authenticated ones.
    public var storedSize: UInt64
    public var fileID: [UInt8]
    public var root: [UInt8]
    /// The object (header, [ciphertext,] tag tree), relative to the volume directory; empty
    /// when the tag tree is kept in the metadata (`inlineTree`).
    public var object: String
    /// Hole chunks, sorted, disjoint and not adjacent (version 2 only).
    public var holes: [HoleSpan]
    /// The tag tree of an authenticated file built step by step: kept in the metadata, as
    /// SCONE keeps an authenticated region's tags, so nothing is written beside its plaintext.
    public var inlineTree: [UInt8]?
    /// Chunks with a non-zero generation, sorted by chunk (encrypted files written by a
    /// read-write mount only).
    public var generations: [ChunkGeneration]

    public init(version: FormatVersion = .current, kind: ChunkKind, chunkSize: UInt32, storedSize: UInt64, fileID: [UInt8],
                root: [UInt8], object: String, holes: [HoleSpan] = [], inlineTree: [UInt8]? = nil,
                generations: [ChunkGeneration] = []) {
        self.version = version
        self.kind = kind
        self.chunkSize = chunkSize
        self.storedSize = storedSize
        self.fileID = fileID
        self.root = root
        self.object = object
        self.holes = holes
        self.inlineTree = inlineTree
        self.generations = generations
    }

    /// The generation chunk `c` was encrypted under (binary search; 0 unless listed).
    public func generation(of c: UInt64) -> UInt32 {
        if generations.isEmpty { return 0 }
        var lo = 0, hi = generations.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if generations[mid].chunk < c { lo = mid + 1 } else { hi = mid }
        }
        return lo < generations.count && generations[lo].chunk == c ? generations[lo].generation : 0
    }

    public var chunkCount: UInt64 {
        max(1, (storedSize + UInt64(chunkSize) - 1) / UInt64(chunkSize))
    }

    public var geometry: TreeGeometry { TreeGeometry(chunkCount: chunkCount, version: version) }

    /// Offset of the tag tree inside the object.
    public var treeOffset: UInt64 {
        UInt64(ObjectHeader.size) + (kind == .encrypted ? storedSize : 0)
    }

    public var objectSize: UInt64 { treeOffset + geometry.byteCount }

    /// Whether chunk `c` is a hole.
    public func isHole(_ c: UInt64) -> Bool { holes.containsChunk(c) }

    /// Bytes of the file that are holes (for st_blocks).
    public var holeBytes: UInt64 { holes.reduce(0) { $0 + $1.count } * UInt64(chunkSize) }
}

public enum EntryContent: Equatable, Sendable {
    case directory
    case symlink(target: [UInt8])
    /// `plain` is where the plaintext lies on disk (authenticated and not-protected regions).
    case file(size: UInt64, region: RegionKind, protection: ProtectedFile?, plain: String?)
}

/// An extended attribute (`user.*`, `security.*`, `trusted.*`, `system.posix_acl_*`).
public struct ExtendedAttribute: Equatable, Sendable {
    public var name: [UInt8]
    public var value: [UInt8]
    public init(name: [UInt8], value: [UInt8]) { self.name = name; self.value = value }
    public static let maximumNameLength = 255
    public static let maximumValueLength = 65536
}

public struct Entry: Equatable, Sendable {
    public var path: String
    /// Permission bits (and setuid, setgid, sticky).
    public var mode: UInt32
    public var mtimeSeconds: Int64
    public var mtimeNanoseconds: UInt32
    public var content: EntryContent
    /// Owner (version 2; version-1 volumes record none and read as 0).
    public var uid: UInt32
    public var gid: UInt32
    /// Sorted by name (version 2).
    public var xattrs: [ExtendedAttribute]
    /// For the second and later paths of a hard-linked file: the index of its first path, whose
    /// content and attributes this entry shares (version 2).
    public var linkOf: Int?

    public init(path: String, mode: UInt32, mtimeSeconds: Int64, mtimeNanoseconds: UInt32, content: EntryContent,
                uid: UInt32 = 0, gid: UInt32 = 0, xattrs: [ExtendedAttribute] = [], linkOf: Int? = nil) {
        self.path = path
        self.mode = mode
        self.mtimeSeconds = mtimeSeconds
        self.mtimeNanoseconds = mtimeNanoseconds
        self.content = content
        self.uid = uid
        self.gid = gid
        self.xattrs = xattrs
        self.linkOf = linkOf
    }

    public var size: UInt64 {
        switch content {
        case .directory: return 0
        case .symlink(let t): return UInt64(t.count)
        case .file(let s, _, _, _): return s
        }
    }

    public var isDirectory: Bool { if case .directory = content { return true } else { return false } }
    public var isFile: Bool { if case .file = content { return true } else { return false } }

    /// The object holding this entry's content, as the metadata names it (relative to the
    /// volume directory, or absolute): nil for a hard link (its first path names it), a file
    /// whose tag tree is kept inline, and anything that is not a protected file.
    public var storedObject: String? {
        guard linkOf == nil, case .file(_, _, let p?, _) = content, p.inlineTree == nil else { return nil }
        return p.object
    }
}

/// Everything the sealed metadata holds (docs/FORMAT.md §4).
public struct VolumeMetadata: Equatable, Sendable {
    public static let magic = Array("FSPFMETA".utf8)

    public var version: FormatVersion
    public var reproducible: Bool
    public var regions: [Region]
    /// The root directory's attributes (version 2; nil in version 1, which records none).
    public var root: Entry?
    /// Sorted by path bytes; the root directory is not among them.
    public var entries: [Entry]

    /// Flag bit 1: encrypted files carry chunk generations (a volume a read-write mount sealed).
    /// Set whenever any file has one, so that volumes nobody rewrote encode as before.
    var hasGenerations: Bool {
        entries.contains { if case .file(_, _, let p?, _) = $0.content { return !p.generations.isEmpty } else { return false } }
    }

    /// The root's attributes as readers show them: format 1 records none, so its root shows
    /// 0755 and the newest modification time in the tree (as fspf-mount always showed it).
    public var rootEntry: Entry {
        if let root { return root }
        let newest = entries.max { ($0.mtimeSeconds, $0.mtimeNanoseconds) < ($1.mtimeSeconds, $1.mtimeNanoseconds) }
        return Entry(path: "", mode: 0o755, mtimeSeconds: newest?.mtimeSeconds ?? 0, mtimeNanoseconds: newest?.mtimeNanoseconds ?? 0,
                     content: .directory)
    }

    public init(version: FormatVersion = .current, reproducible: Bool, regions: [Region], root: Entry? = nil, entries: [Entry]) {
        self.version = version
        self.reproducible = reproducible
        self.regions = regions
        self.root = root
        self.entries = entries
    }

    /// Encodes in `version`'s layout and pads with zeros to the Padmé length, hiding the exact
    /// size of the listing.
    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.put(VolumeMetadata.magic)
        w.put(version.rawValue)
        let generations = hasGenerations
        precondition(!generations || (version == .v2 && !reproducible), "generations need format 2, not reproducible")
        w.put(UInt16(reproducible ? 1 : 0) | (generations ? 2 : 0))
        w.put(UInt32(regions.count))
        for r in regions {
            w.put(r.kind.rawValue | (r.ephemeral ? Region.ephemeralBit : 0))
            w.put(r.chunkSize)
            w.putString(Array(r.path.utf8))
        }
        if version == .v2 { Self.putAttributes(root ?? Entry(path: "", mode: 0o755, mtimeSeconds: 0, mtimeNanoseconds: 0, content: .directory), &w) }
        w.put(UInt32(entries.count))
        w.bytes.reserveCapacity(entries.count * 224)  // about what a written file's entry takes
        for e in entries {
            w.putString(e.path.utf8)
            if version == .v1 {
                precondition(e.linkOf == nil && e.xattrs.isEmpty && e.uid == 0 && e.gid == 0, "not expressible in format version 1")
                w.put(e.mode)
                w.put(e.mtimeSeconds)
                w.put(e.mtimeNanoseconds)
            }
            if let target = e.linkOf {
                w.put(UInt8(4))
                w.put(UInt32(target))
                continue
            }
            switch e.content {
            case .directory: w.put(UInt8(1))
            case .symlink: w.put(UInt8(3))
            case .file: w.put(UInt8(2))
            }
            if version == .v2 { Self.putAttributes(e, &w) }
            switch e.content {
            case .directory:
                break
            case .symlink(let target):
                w.putString(target)
            case .file(let size, let region, let p, let plain):
                w.put(region.rawValue)
                w.put(size)
                if let p {
                    w.put(p.chunkSize)
                    w.put(p.storedSize)
                    w.put(p.fileID)
                    w.put(p.root)
                    w.putString(p.object.utf8)
                    if let tree = p.inlineTree { w.putString(tree) }
                    if version == .v2 {
                        w.put(UInt32(p.holes.count))
                        for h in p.holes { w.put(h.first); w.put(h.count) }
                        if generations && p.kind == .encrypted {
                            w.put(UInt32(p.generations.count))
                            for g in p.generations { w.put(g.chunk); w.put(g.generation) }
                        }
                    } else {
                        precondition(p.holes.isEmpty, "not expressible in format version 1")
                    }
                }
                if let plain { w.putString(plain.utf8) }
            }
        }
        let padded = Int(Padding.padme(UInt64(w.bytes.count)))
        w.bytes.append(contentsOf: repeatElement(0, count: padded - w.bytes.count))
        return w.bytes
    }

    /// mode ‖ uid ‖ gid ‖ mtime ‖ extended attributes (version 2).
    private static func putAttributes(_ e: Entry, _ w: inout ByteWriter) {
        w.put(e.mode)
        w.put(e.uid)
        w.put(e.gid)
        w.put(e.mtimeSeconds)
        w.put(e.mtimeNanoseconds)
        w.put(UInt32(e.xattrs.count))
        for x in e.xattrs {
            w.putString(x.name)
            w.putString(x.value)
        }
    }

    /// Decodes and validates: paths normalised, strictly sorted, parents present, sizes
    /// consistent, hard links to earlier files of the same region, attributes sorted, hole
    /// spans canonical, padding zero. Input here is already authenticated; the checks keep a
    /// buggy or malicious author's volume from confusing the reader.
    public static func decode(_ bytes: [UInt8], context: String) throws -> VolumeMetadata {
        var r = ByteReader(bytes, context: context)
        func bad(_ why: String) -> FSPFError { .badInput(path: context, reason: "invalid metadata: \(why)") }
        guard try r.get(count: 8, "magic") == magic else { throw bad("bad magic") }
        let raw = try r.get(UInt16.self, "version")
        guard let version = FormatVersion(rawValue: raw) else { throw bad("unsupported metadata version \(raw)") }
        let flags = try r.get(UInt16.self, "flags")
        guard flags & ~3 == 0, flags & 2 == 0 || (version == .v2 && flags & 1 == 0) else { throw bad("unknown flags \(flags)") }
        let generations = flags & 2 != 0
        let regionCount = try r.get(UInt32.self, "region count")
        guard regionCount >= 1, Int(regionCount) <= r.remaining / 9 else { throw bad("region count \(regionCount)") }
        var regions: [Region] = []
        for _ in 0..<regionCount {
            let byte = try r.get(UInt8.self, "region kind")
            guard let kind = RegionKind(rawValue: byte & ~Region.ephemeralBit) else { throw bad("region kind") }
            let cs = try r.get(UInt32.self, "chunk size")
            guard ChunkSize.isValid(cs) else { throw bad("chunk size \(cs)") }
            let path = try decodePath(try r.getString("region path"), context: context)
            guard !regions.contains(where: { $0.path == path }) else { throw bad("duplicate region '\(path)'") }
            regions.append(Region(path: path, kind: kind, chunkSize: cs, ephemeral: byte & Region.ephemeralBit != 0))
        }
        guard regions.contains(where: { $0.path.isEmpty }) else { throw bad("no root region") }
        // An ephemeral region is served empty in every run: it is not the root and holds no
        // other region (its entries are checked below).
        for e in regions where e.ephemeral {
            guard !e.path.isEmpty, !regions.contains(where: { $0.path != e.path && Paths.isWithin($0.path, e.path) }) else {
                throw bad("ephemeral region '\(e.path)' is the root or holds another region")
            }
        }
        let ephemeral = regions.filter(\.ephemeral).map(\.path)
        var root: Entry? = nil
        if version == .v2 {
            var e = Entry(path: "", mode: 0, mtimeSeconds: 0, mtimeNanoseconds: 0, content: .directory)
            try getAttributes(&e, &r, bad)
            root = e
        }
        let entryCount = try r.get(UInt32.self, "entry count")
        guard Int(entryCount) <= r.remaining / (version == .v1 ? 21 : 10) else { throw bad("entry count \(entryCount)") }
        var entries: [Entry] = []
        entries.reserveCapacity(Int(entryCount))
        var directories: Set<String> = [""]
        var previous: [UInt8]? = nil
        for _ in 0..<entryCount {
            let rawPath = try r.getString("path")
            let path = try decodePath(rawPath, context: context)
            guard !path.isEmpty else { throw bad("entry for the root") }
            if let p = previous { guard Paths.precedes(p, rawPath) else { throw bad("entries not sorted at '\(path)'") } }
            previous = rawPath
            guard directories.contains(Paths.parentInVolume(path)) else { throw bad("'\(path)' has no parent directory") }
            if let r = ephemeral.first(where: { Paths.isWithin(path, $0) }) { throw bad("'\(path)' lies in the ephemeral region '\(r)'") }
            var e = Entry(path: path, mode: 0, mtimeSeconds: 0, mtimeNanoseconds: 0, content: .directory)
            if version == .v1 { try getTimes(&e, &r, bad) }
            let type = try r.get(UInt8.self, "entry type")
            if version == .v2 && type == 4 {
                let target = Int(try r.get(UInt32.self, "link target"))
                guard target < entries.count, entries[target].linkOf == nil, case .file(_, let region, _, _) = entries[target].content,
                      Region.of(path, in: regions).path == Region.of(entries[target].path, in: regions).path, region == Region.of(path, in: regions).kind
                else { throw bad("hard link '\(path)'") }
                e = entries[target]
                e.path = path
                e.linkOf = target
                entries.append(e)
                continue
            }
            if version == .v2 { try getAttributes(&e, &r, bad) }
            switch type {
            case 1:
                e.content = .directory
                directories.insert(path)
            case 3:
                e.content = .symlink(target: try r.getString("symlink target", max: 4096))
            case 2:
                guard let region = RegionKind(rawValue: try r.get(UInt8.self, "region")) else { throw bad("region of '\(path)'") }
                let size = try r.get(UInt64.self, "size")
                guard size <= Padding.maximumSize else { throw bad("size of '\(path)'") }
                var protection: ProtectedFile? = nil
                if region != .notProtected {
                    let cs = try r.get(UInt32.self, "chunk size")
                    guard ChunkSize.isValid(cs) else { throw bad("chunk size of '\(path)'") }
                    let stored = try r.get(UInt64.self, "stored size")
                    let kind: ChunkKind = region == .encrypted ? .encrypted : .authenticated
                    let expectedStored = kind == .encrypted ? Padding.padme(size) : size
                    guard stored == expectedStored else { throw bad("stored size of '\(path)'") }
                    let id = try r.get(count: ProtectedFile.idSize, "file id")
                    let root = try r.get(count: 32, "root")
                    let rawObject = try r.getString("object")
                    var object = "", inlineTree: [UInt8]? = nil
                    if rawObject.isEmpty && kind == .authenticated && version == .v2 {
                        // An empty location: the tree follows, exactly as long as its geometry says.
                        let expected = TreeGeometry(chunkCount: max(1, (stored + UInt64(cs) - 1) / UInt64(cs)), version: version).byteCount
                        guard expected <= UInt64(r.remaining) else { throw bad("tag tree of '\(path)'") }
                        let tree = try r.getString("tag tree", max: Int(expected))
                        guard tree.count == Int(expected) else { throw bad("tag tree of '\(path)'") }
                        inlineTree = tree
                    } else {
                        object = try decodeLocation(rawObject, context: context)
                    }
                    var holes: [HoleSpan] = []
                    if version == .v2 {
                        let n = try r.get(UInt32.self, "hole count")
                        guard Int(n) <= r.remaining / 16 else { throw bad("hole count of '\(path)'") }
                        // Only chunks wholly inside the content can be holes, never padding.
                        let limit = size / UInt64(cs)
                        for _ in 0..<n {
                            let h = HoleSpan(first: try r.get(UInt64.self, "hole"), count: try r.get(UInt64.self, "hole"))
                            guard h.count >= 1, h.first < limit, h.count <= limit - h.first,
                                  holes.last.map({ $0.end < h.first }) ?? true else { throw bad("holes of '\(path)'") }
                            holes.append(h)
                        }
                    }
                    var rewritten: [ChunkGeneration] = []
                    if generations && kind == .encrypted {
                        let n = try r.get(UInt32.self, "generation count")
                        guard Int(n) <= r.remaining / 12 else { throw bad("generation count of '\(path)'") }
                        let chunks = max(1, (stored + UInt64(cs) - 1) / UInt64(cs))
                        for _ in 0..<n {
                            let g = ChunkGeneration(chunk: try r.get(UInt64.self, "generation"), generation: try r.get(UInt32.self, "generation"))
                            guard g.generation >= 1, g.chunk < chunks, !holes.containsChunk(g.chunk),
                                  rewritten.last.map({ $0.chunk < g.chunk }) ?? true else { throw bad("generations of '\(path)'") }
                            rewritten.append(g)
                        }
                    }
                    protection = ProtectedFile(version: version, kind: kind, chunkSize: cs, storedSize: stored, fileID: id,
                                               root: root, object: object, holes: holes, inlineTree: inlineTree, generations: rewritten)
                }
                let plain = region == .encrypted ? nil : try decodeLocation(try r.getString("location"), context: context)
                e.content = .file(size: size, region: region, protection: protection, plain: plain)
            default:
                throw bad("entry type of '\(path)'")
            }
            entries.append(e)
        }
        guard bytes.count == Int(Padding.padme(UInt64(r.offset))),
              bytes[r.offset...].allSatisfy({ $0 == 0 }) else { throw bad("padding") }
        return VolumeMetadata(version: version, reproducible: flags & 1 != 0, regions: regions, root: root, entries: entries)
    }

    private static func getTimes(_ e: inout Entry, _ r: inout ByteReader, _ bad: (String) -> FSPFError) throws {
        e.mode = try r.get(UInt32.self, "mode")
        guard e.mode & ~0o7777 == 0 else { throw bad("mode of '\(e.path)'") }
        e.mtimeSeconds = try r.get(Int64.self, "mtime")
        e.mtimeNanoseconds = try r.get(UInt32.self, "mtime")
        guard e.mtimeNanoseconds < 1_000_000_000 else { throw bad("mtime of '\(e.path)'") }
    }

    private static func getAttributes(_ e: inout Entry, _ r: inout ByteReader, _ bad: (String) -> FSPFError) throws {
        e.mode = try r.get(UInt32.self, "mode")
        guard e.mode & ~0o7777 == 0 else { throw bad("mode of '\(e.path)'") }
        e.uid = try r.get(UInt32.self, "uid")
        e.gid = try r.get(UInt32.self, "gid")
        e.mtimeSeconds = try r.get(Int64.self, "mtime")
        e.mtimeNanoseconds = try r.get(UInt32.self, "mtime")
        guard e.mtimeNanoseconds < 1_000_000_000 else { throw bad("mtime of '\(e.path)'") }
        let n = try r.get(UInt32.self, "attribute count")
        guard Int(n) <= r.remaining / 9 else { throw bad("attribute count of '\(e.path)'") }
        for _ in 0..<n {
            let name = try r.getString("attribute name", max: ExtendedAttribute.maximumNameLength)
            let value = try r.getString("attribute value", max: ExtendedAttribute.maximumValueLength)
            guard !name.isEmpty, !name.contains(0), name.contains(UInt8(ascii: ".")),
                  e.xattrs.last.map({ $0.name.lexicographicallyPrecedes(name) }) ?? true else {
                throw bad("extended attributes of '\(e.path)'")
            }
            e.xattrs.append(ExtendedAttribute(name: name, value: value))
        }
    }

    private static func decodePath(_ raw: [UInt8], context: String) throws -> String {
        guard Paths.isNormalVolumePath(raw), let s = String(validating: raw, as: UTF8.self) else {
            throw FSPFError.badInput(path: context, reason: "invalid metadata: bad path")
        }
        return s
    }

    private static func decodeLocation(_ raw: [UInt8], context: String) throws -> String {
        guard !raw.isEmpty, !raw.contains(0), let s = String(validating: raw, as: UTF8.self) else {
            throw FSPFError.badInput(path: context, reason: "invalid metadata: bad location")
        }
        return s
    }
}

public enum ChunkSize {
    /// 16 KiB: see docs/FORMAT.md §2 and docs/BENCHMARKS.md for the measurements behind it.
    public static let `default`: UInt32 = 16 * 1024
    public static let minimum: UInt32 = 4096
    public static let maximum: UInt32 = 16 * 1024 * 1024

    /// Powers of two from 4 KiB to 16 MiB.
    public static func isValid(_ size: UInt32) -> Bool {
        size >= minimum && size <= maximum && size & (size - 1) == 0
    }

    /// A chunk size as options give it: bytes, or with a K or M suffix.
    public static func parse(_ text: String, option: String) throws -> UInt32 {
        var digits = Substring(text)
        var multiplier: UInt64 = 1
        switch text.last {
        case "k", "K": multiplier = 1024; digits = digits.dropLast()
        case "m", "M": multiplier = 1024 * 1024; digits = digits.dropLast()
        default: break
        }
        guard let n = UInt64(digits), n * multiplier <= UInt64(UInt32.max), isValid(UInt32(n * multiplier)) else {
            throw FSPFError.usage("\(option) \(text): must be a power of two from 4K to 16M")
        }
        return UInt32(n * multiplier)
    }
}

extension Paths {
    /// True when `raw` is what `normalize` returns for it, checked on the bytes (metadata
    /// decoding runs this for every entry): no NUL, no empty, "." or ".." component, so no
    /// leading, trailing or doubled "/".
    static func isNormalVolumePath(_ raw: [UInt8]) -> Bool {
        if raw.isEmpty { return true }
        let dot = UInt8(ascii: ".")
        var start = 0
        for i in 0...raw.count {
            if i < raw.count {
                if raw[i] == 0 { return false }
                if raw[i] != UInt8(ascii: "/") { continue }
            }
            let n = i - start
            if n == 0 || (n == 1 && raw[start] == dot) || (n == 2 && raw[start] == dot && raw[start + 1] == dot) { return false }
            start = i + 1
        }
        return true
    }

    /// Parent inside a volume ("a/b" -> "a", "a" -> "").
    public static func parentInVolume(_ path: String) -> String {
        // On the UTF-8 view: '/' is one byte, and Character search costs a grapheme walk.
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "" }
        return String(path.utf8[..<slash])!
    }
}

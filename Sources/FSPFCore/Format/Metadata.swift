import FSPFCrypto
import FSPFSystem

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

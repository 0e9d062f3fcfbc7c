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

    public init(path: String, kind: RegionKind, chunkSize: UInt32) {
        self.path = path
        self.kind = kind
        self.chunkSize = chunkSize
    }

    /// The region of `path`: longest matching prefix, component-wise. `regions` always
    /// contains the root region.
    public static func of(_ path: String, in regions: [Region]) -> Region {
        var best: Region? = nil
        for r in regions where Paths.isWithin(path, r.path) {
            if best == nil || r.path.utf8.count > best!.path.utf8.count { best = r }
        }
        return best!
    }
}

/// The protection record of an encrypted or authenticated file.
public struct ProtectedFile: Equatable, Sendable {
    public static let idSize = 32

    public var kind: ChunkKind
    public var chunkSize: UInt32
    /// Bytes of data the chunks cover: the Padmé-padded size for encrypted files, the file
    /// size for authenticated ones.
    public var storedSize: UInt64
    public var fileID: [UInt8]
    public var root: [UInt8]
    /// The object (header, [ciphertext,] tag tree), relative to the volume directory.
    public var object: String

    public var chunkCount: UInt64 {
        max(1, (storedSize + UInt64(chunkSize) - 1) / UInt64(chunkSize))
    }

    public var geometry: TreeGeometry { TreeGeometry(chunkCount: chunkCount) }

    /// Offset of the tag tree inside the object.
    public var treeOffset: UInt64 {
        UInt64(ObjectHeader.size) + (kind == .encrypted ? storedSize : 0)
    }

    public var objectSize: UInt64 { treeOffset + geometry.byteCount }
}

public enum EntryContent: Equatable, Sendable {
    case directory
    case symlink(target: [UInt8])
    /// `plain` is where the plaintext lies on disk (authenticated and not-protected regions).
    case file(size: UInt64, region: RegionKind, protection: ProtectedFile?, plain: String?)
}

public struct Entry: Equatable, Sendable {
    public var path: String
    public var mode: UInt32
    public var mtimeSeconds: Int64
    public var mtimeNanoseconds: UInt32
    public var content: EntryContent

    public var size: UInt64 {
        switch content {
        case .directory: return 0
        case .symlink(let t): return UInt64(t.count)
        case .file(let s, _, _, _): return s
        }
    }

    public var isDirectory: Bool { if case .directory = content { return true } else { return false } }
}

/// Everything the sealed metadata holds (docs/FORMAT.md §4).
public struct VolumeMetadata: Equatable, Sendable {
    public static let magic = Array("FSPFMETA".utf8)
    public static let version: UInt16 = 1

    public var reproducible: Bool
    public var regions: [Region]
    /// Sorted by path bytes; the root directory is implicit.
    public var entries: [Entry]

    public init(reproducible: Bool, regions: [Region], entries: [Entry]) {
        self.reproducible = reproducible
        self.regions = regions
        self.entries = entries
    }

    /// Encodes and pads with zeros to the Padmé length, hiding the exact size of the listing.
    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.put(VolumeMetadata.magic)
        w.put(VolumeMetadata.version)
        w.put(UInt16(reproducible ? 1 : 0))
        w.put(UInt32(regions.count))
        for r in regions {
            w.put(r.kind.rawValue)
            w.put(r.chunkSize)
            w.putString(Array(r.path.utf8))
        }
        w.put(UInt32(entries.count))
        for e in entries {
            w.putString(Array(e.path.utf8))
            w.put(e.mode)
            w.put(e.mtimeSeconds)
            w.put(e.mtimeNanoseconds)
            switch e.content {
            case .directory:
                w.put(UInt8(1))
            case .symlink(let target):
                w.put(UInt8(3))
                w.putString(target)
            case .file(let size, let region, let p, let plain):
                w.put(UInt8(2))
                w.put(region.rawValue)
                w.put(size)
                if let p {
                    w.put(p.chunkSize)
                    w.put(p.storedSize)
                    w.put(p.fileID)
                    w.put(p.root)
                    w.putString(Array(p.object.utf8))
                }
                if let plain { w.putString(Array(plain.utf8)) }
            }
        }
        let padded = Int(Padding.padme(UInt64(w.bytes.count)))
        w.bytes.append(contentsOf: repeatElement(0, count: padded - w.bytes.count))
        return w.bytes
    }

    /// Decodes and validates: paths normalised, strictly sorted, parents present, sizes
    /// consistent, padding zero. Input here is already authenticated; the checks keep a
    /// buggy or malicious author's volume from confusing the reader.
    public static func decode(_ bytes: [UInt8], context: String) throws -> VolumeMetadata {
        var r = ByteReader(bytes, context: context)
        func bad(_ why: String) -> FSPFError { .badInput(path: context, reason: "invalid metadata: \(why)") }
        guard try r.get(count: 8, "magic") == magic else { throw bad("bad magic") }
        let version = try r.get(UInt16.self, "version")
        guard version == VolumeMetadata.version else { throw bad("unsupported metadata version \(version)") }
        let flags = try r.get(UInt16.self, "flags")
        guard flags & ~1 == 0 else { throw bad("unknown flags \(flags)") }
        let regionCount = try r.get(UInt32.self, "region count")
        guard regionCount >= 1, Int(regionCount) <= r.remaining / 9 else { throw bad("region count \(regionCount)") }
        var regions: [Region] = []
        for _ in 0..<regionCount {
            guard let kind = RegionKind(rawValue: try r.get(UInt8.self, "region kind")) else { throw bad("region kind") }
            let cs = try r.get(UInt32.self, "chunk size")
            guard ChunkSize.isValid(cs) else { throw bad("chunk size \(cs)") }
            let path = try decodePath(try r.getString("region path"), context: context)
            guard !regions.contains(where: { $0.path == path }) else { throw bad("duplicate region '\(path)'") }
            regions.append(Region(path: path, kind: kind, chunkSize: cs))
        }
        guard regions.contains(where: { $0.path.isEmpty }) else { throw bad("no root region") }
        let entryCount = try r.get(UInt32.self, "entry count")
        guard Int(entryCount) <= r.remaining / 21 else { throw bad("entry count \(entryCount)") }
        var entries: [Entry] = []
        entries.reserveCapacity(Int(entryCount))
        var directories: Set<String> = [""]
        var previous: [UInt8]? = nil
        for _ in 0..<entryCount {
            let rawPath = try r.getString("path")
            let path = try decodePath(rawPath, context: context)
            guard !path.isEmpty else { throw bad("entry for the root") }
            if let p = previous { guard p.lexicographicallyPrecedes(rawPath) else { throw bad("entries not sorted at '\(path)'") } }
            previous = rawPath
            guard directories.contains(Paths.parentInVolume(path)) else { throw bad("'\(path)' has no parent directory") }
            let mode = try r.get(UInt32.self, "mode")
            guard mode & ~0o7777 == 0 else { throw bad("mode of '\(path)'") }
            let sec = try r.get(Int64.self, "mtime")
            let nsec = try r.get(UInt32.self, "mtime")
            guard nsec < 1_000_000_000 else { throw bad("mtime of '\(path)'") }
            let content: EntryContent
            switch try r.get(UInt8.self, "entry type") {
            case 1:
                content = .directory
                directories.insert(path)
            case 3:
                content = .symlink(target: try r.getString("symlink target", max: 4096))
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
                    let object = try decodeLocation(try r.getString("object"), context: context)
                    protection = ProtectedFile(kind: kind, chunkSize: cs, storedSize: stored, fileID: id, root: root, object: object)
                }
                let plain = region == .encrypted ? nil : try decodeLocation(try r.getString("location"), context: context)
                content = .file(size: size, region: region, protection: protection, plain: plain)
            default:
                throw bad("entry type of '\(path)'")
            }
            entries.append(Entry(path: path, mode: mode, mtimeSeconds: sec, mtimeNanoseconds: nsec, content: content))
        }
        guard bytes.count == Int(Padding.padme(UInt64(r.offset))),
              bytes[r.offset...].allSatisfy({ $0 == 0 }) else { throw bad("padding") }
        return VolumeMetadata(reproducible: flags & 1 != 0, regions: regions, entries: entries)
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
    /// 64 KiB: see docs/FORMAT.md §2 and docs/BENCHMARKS.md for the measurements behind it.
    public static let `default`: UInt32 = 64 * 1024
    public static let minimum: UInt32 = 4096
    public static let maximum: UInt32 = 16 * 1024 * 1024

    /// Powers of two from 4 KiB to 16 MiB.
    public static func isValid(_ size: UInt32) -> Bool {
        size >= minimum && size <= maximum && size & (size - 1) == 0
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

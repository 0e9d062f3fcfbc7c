import Dispatch
import Glibc
import Synchronization
import FSPFCrypto
import FSPFSystem

/// Where one input directory goes in the volume.
public struct WriterSource: Sendable {
    /// The plaintext directory to read (or, with `volume`, a name for it in messages).
    public var directory: String
    /// Read the tree from this volume instead of a directory (`fspf upgrade`).
    public var volume: VolumeReader? = nil
    /// Volume path the directory's content appears under ("" = root).
    public var prefix: String
    /// Directory that receives this source's objects and plain copies.
    public var output: String
    /// `output` held open already (the directory a build claimed); else opened by its path.
    var outputDirectory: Directory? = nil

    public init(directory: String, prefix: String, output: String) {
        self.directory = directory
        self.prefix = prefix
        self.output = output
    }
}

public struct WriterOptions: Sendable {
    /// Regions; the root region (path "") decides the default. Missing root = encrypted.
    public var regions: [Region] = []
    public var chunkSize: UInt32 = ChunkSize.default
    public var reproducible = false
    /// Modification time recorded for every entry in reproducible mode (SOURCE_DATE_EPOCH).
    public var reproducibleTime: Int64 = 0
    public var threads: Int = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    /// Bytes of plaintext per work item; memory is about threads × this. Fixed: reproducible
    /// file IDs hash the plaintext segment by segment (FORMAT.md §6).
    let segmentBytes: Int = 4 << 20
    public var progress: Progress? = nil
    /// `--exclude` patterns (docs: InputTree.excluded).
    public var excludes: [String] = []
    /// Record extended attributes (`--no-xattrs` drops them).
    public var xattrs = true
    /// Store chunks that lie wholly in a hole of the input as holes (`--dense` stores them
    /// encrypted like any data, hiding where the holes are).
    public var sparse = true
    /// Step builds: authenticated files' tag trees are built in memory and kept in the
    /// metadata, so nothing is written beside their plaintext.
    var inlineTrees = false

    public init() {}
}

public struct WriteResult: Sendable {
    public var metadataPath: String
    public var tag: VolumeTag
    public var files: Int
    public var bytes: UInt64
}

/// Turns plaintext directory trees into a protected volume (docs/FORMAT.md).
///
/// Streaming and bounded: files are cut into segments that `threads` workers encrypt in
/// parallel, each with one reused buffer; chunk tags go straight to the object's tag-tree
/// area on disk, and the upper tree levels are built afterwards from disk, so memory does not
/// grow with file size. The sealed metadata is written last, atomically: until it exists,
/// nothing opens as a volume.
public enum VolumeWriter {
    /// Encrypts one directory into a new volume directory `output`. `output` must not exist
    /// or be an empty directory; a new one is built under a temporary name and renamed.
    public static func encrypt(input: String, output: String, keys: VolumeKeys, options: WriterOptions) throws -> WriteResult {
        let absoluteInput = Paths.normalized(input)
        if absoluteInput == "/" || Paths.isWithin(Paths.normalized(output), absoluteInput) {
            throw FSPFError.usage("\(output): the output must not lie inside the input \(input)")
        }
        return try build(output: output, keys: keys, options: options) { [WriterSource(directory: input, prefix: "", output: $0)] }
    }

    /// Re-encrypts a volume of any format into a new format-2 volume directory `output` (`fspf
    /// upgrade`): the same tree, regions, chunk sizes and attributes; every byte is verified as
    /// it is read. A reproducible volume stays reproducible.
    public static func convert(_ reader: VolumeReader, output: String, keys: VolumeKeys, options: WriterOptions) throws -> WriteResult {
        if Paths.isWithin(Paths.normalized(output), Paths.normalized(reader.directory)) {
            throw FSPFError.usage("\(output): the output must not lie inside the volume \(reader.directory)")
        }
        var o = options
        o.regions = reader.metadata.regions
        o.reproducible = reader.metadata.reproducible
        // A reproducible volume gave every entry one time (SOURCE_DATE_EPOCH): keep it.
        if o.reproducible { o.reproducibleTime = reader.entries.first?.mtimeSeconds ?? 0 }
        return try build(output: output, keys: keys, options: o) {
            var source = WriterSource(directory: reader.metadataPath, prefix: "", output: $0)
            source.volume = reader
            return [source]
        }
    }

    /// Builds a volume directory in `output`: a new directory, or an empty one (a mount point),
    /// or one holding only the hidden object store an earlier build left behind (what `rm -rf
    /// OUT/*` leaves), which is replaced. The output is locked for the whole build: a second
    /// writer is refused. The metadata is written last, so nothing opens as a volume before the
    /// end; on failure everything written is removed (the directory too, if this build made it).
    private static func build(output: String, keys: VolumeKeys, options: WriterOptions,
                              sources: (String) -> [WriterSource]) throws -> WriteResult {
        let (parentPath, name) = Paths.split(output)
        let parent: Directory
        do { parent = try Directory.open(parentPath) } catch FSPFError.io(_, _, let e) where e == ENOENT || e == ENOTDIR {
            throw FSPFError.noInput(path: parentPath, reason: "output's parent directory does not exist")
        }
        let created = mkdirat(parent.descriptor.fd, name, 0o755) == 0
        if !created && errno != EEXIST { throw FSPFError.io(path: output, operation: "mkdir", errno: errno) }
        // The output as the user named it (a link there is the user's naming); below it, nothing is followed.
        let out: Directory
        do { out = try Directory.open(output) } catch FSPFError.io(_, _, ENOTDIR) { throw FSPFError.outputExists(path: output) }
        guard out.lockExclusively() else { throw FSPFError.outputBusy(path: output) }
        let names = try out.list().map { String(decoding: $0, as: UTF8.self) }
        if names == [ObjectStore.directoryName] {
            out.removeTree(ObjectStore.directoryName)
        } else if !names.isEmpty {
            throw FSPFError.outputExists(path: output)
        }
        do {
            var list = sources(output)
            for i in list.indices where list[i].output == output { list[i].outputDirectory = out }
            let result = try write(sources: list, metadata: (out, SealedMetadata.fileName), metadataPath: Paths.join(output, SealedMetadata.fileName),
                                   keys: keys, options: options)
            try parent.sync()
            return result
        } catch {
            if created {
                parent.removeTree(name)
            } else {
                for n in (try? out.list()) ?? [] { out.removeTree(String(decoding: n, as: UTF8.self)) }
            }
            throw error
        }
    }

    /// Protects `sources` and writes the sealed metadata to `metadataPath`. Object and plain
    /// locations are recorded relative to the metadata's directory where they lie below it.
    static func write(sources: [WriterSource], metadata file: (Directory, String), metadataPath: String, keys: VolumeKeys,
                      options: WriterOptions) throws -> WriteResult {
        let regions = Region.normalized(options.regions, rootChunkSize: options.chunkSize)
        var o = options
        o.regions = regions
        let done = try protect(sources: sources, metadataPath: metadataPath, keys: keys, options: o)
        let metadata = VolumeMetadata(version: .current, reproducible: options.reproducible, regions: regions,
                                      root: done.root, entries: done.entries)
        let tag = try seal(metadata, to: file, keys: keys)
        return WriteResult(metadataPath: metadataPath, tag: tag, files: done.files, bytes: done.bytes)
    }

    /// What `protect` wrote: the entries (in path order), the root's attributes, and the object
    /// files it created (absolute paths, as the metadata's locations are made from them).
    struct Protected {
        var root: Entry
        var entries: [Entry]
        var objects: [String]
        var files: Int
        var bytes: UInt64
    }

    /// Encrypts or authenticates every file of `sources` under `options.regions`; on any
    /// failure (interruption included) removes the objects and plain copies it created.
    static func protect(sources: [WriterSource], metadataPath: String, keys: VolumeKeys, options: WriterOptions) throws -> Protected {
        let plan = try Plan(sources: sources, metadataPath: metadataPath, regions: options.regions, options: options, keys: keys)
        let progress = options.progress
        progress?.setTotals(bytes: plan.jobs.reduce(0) { $0 + $1.size }, files: plan.jobs.count)
        let engine = Engine(plan: plan, keys: keys, options: options, progress: progress)
        do {
            if options.reproducible {
                try engine.run(pass: .hash)
                for job in plan.jobs where job.kind != .notProtected { job.fileID = plan.reproducibleID(job, keys: keys) }
            }
            try plan.prepareOutputs()
            try engine.run(pass: .protect)
            if Interrupt.requested { throw FSPFError.interrupted }
        } catch {
            plan.removeOutputs()
            throw error
        }
        let metadata = plan.metadata(reproducible: options.reproducible, regions: options.regions)
        return Protected(root: plan.root, entries: metadata.entries, objects: plan.createdObjects,
                         files: plan.jobs.count, bytes: plan.jobs.reduce(0) { $0 + $1.size })
    }

    /// Writes the sealed metadata atomically, as `file` in its directory (replacing a draft
    /// there), once every object it names is on disk.
    static func seal(_ metadata: VolumeMetadata, to file: (Directory, String), keys: VolumeKeys) throws -> VolumeTag {
        FileSystem.flushAll()
        let sealed = SealedMetadata.seal(metadata, keys: keys)
        if Interrupt.requested { throw FSPFError.interrupted }
        try file.0.writeAtomically(file.1, sealed.file, replacing: true)
        return sealed.tag
    }
}

/// One regular file to protect. Shared by the workers that process its segments; the
/// raw buffers are written at disjoint indices only.
final class FileJob: @unchecked Sendable {
    let entryIndex: Int
    let source: String
    let size: UInt64
    let kind: RegionKind
    let chunkSize: UInt32
    /// Bytes the chunks cover (padded size for encrypted files).
    let storedSize: UInt64
    let segmentBytes: UInt64
    let segmentCount: Int
    let volumePath: String
    var fileID: [UInt8] = []
    /// Which source's output receives its object and plain copy (`Plan.output(_:)`).
    let output: Int
    /// The object: its store and path there, its absolute path, and as the metadata records it.
    var objectStore: ObjectStore? = nil
    var objectName: String? = nil
    var objectPath: String? = nil
    var objectLocation: String? = nil
    /// The plain copy: below the output, its absolute path, and as the metadata records it.
    var plainRelative: String? = nil
    var plainPath: String? = nil
    var plainLocation: String? = nil
    var inPlace = false
    /// The plain copy did not exist before this build (removed again if the build fails).
    var createdPlain = false
    /// Authenticated file built step by step: its tree is built in memory (`objectFD` is a
    /// memfd) and goes into the metadata.
    var inline = false
    var inlineTree: [UInt8]? = nil
    var root: [UInt8] = []
    /// Hole chunks, found when the protect pass opens the file (if `findsHoles`).
    var holes: [HoleSpan] = []
    var findsHoles = false
    /// The file's plaintext comes from another volume's entry instead of `source` (fspf upgrade).
    var fromVolume: (reader: VolumeReader, entry: Int)? = nil
    // Per pass:
    var sourceFD: FileDescriptor? = nil
    var objectFD: FileDescriptor? = nil
    var plainFD: FileDescriptor? = nil
    var sourceStat = stat()
    let remaining = Atomic<Int>(0)
    /// Reproducible mode: SHA-256 of each segment's plaintext (32 bytes each).
    var segmentDigests: UnsafeMutableRawBufferPointer? = nil

    init(entryIndex: Int, item: InputItem, region: Region, segmentTarget: Int, output: Int) {
        self.entryIndex = entryIndex
        self.output = output
        self.source = item.source
        self.size = item.size
        self.kind = region.kind
        self.chunkSize = region.chunkSize
        self.volumePath = item.path
        self.storedSize = region.kind == .encrypted ? Padding.padme(item.size) : item.size
        let perSegment = max(1, UInt64(segmentTarget) / UInt64(region.chunkSize))
        self.segmentBytes = perSegment * UInt64(region.chunkSize)
        self.segmentCount = Int(max(1, (storedSize + segmentBytes - 1) / segmentBytes))
    }

    deinit { segmentDigests?.deallocate() }

    var chunkKind: ChunkKind { kind == .encrypted ? .encrypted : .authenticated }

    /// Source bytes at `offset`, verified when they come from a volume.
    func readSource(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        guard let (reader, entry) = fromVolume else { return try sourceFD!.read(into: buffer, at: offset) }
        var done = 0
        while done < buffer.count {
            let n = try reader.read(entry: entry, offset: offset + UInt64(done),
                                    into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            if n == 0 { break }
            done += n
        }
        return done
    }
    func isHole(_ c: UInt64) -> Bool { holes.containsChunk(c) }
    var protection: ProtectedFile? {
        guard kind != .notProtected else { return nil }
        return ProtectedFile(version: .current, kind: chunkKind, chunkSize: chunkSize, storedSize: storedSize,
                             fileID: fileID, root: root, object: inline ? "" : objectLocation!, holes: holes,
                             inlineTree: inlineTree)
    }
}

/// The list of entries and file jobs, and where everything goes on disk.
final class Plan: @unchecked Sendable {
    var entries: [Entry] = []
    var jobs: [FileJob] = []
    var root: Entry
    let metadataDirectory: String
    /// Each source's output directory, opened once when the first object or plain copy goes
    /// there (made then if missing, as `addf OUT` may name a new one): they are made through it.
    let sources: [WriterSource]
    private let outputs = Locked<[Int: Directory]>([:])
    private var stores: [ObjectStore?]

    init(sources: [WriterSource], metadataPath: String, regions: [Region], options: WriterOptions, keys: VolumeKeys) throws {
        metadataDirectory = Paths.parent(metadataPath)
        self.sources = sources
        stores = sources.map { _ in nil }
        var items: [InputItem] = []
        var counts: [(WriterSource, Int)] = []
        var rootItem: InputItem? = nil
        let scan = ScanOptions(excludes: options.excludes, xattrs: options.xattrs && !options.reproducible)
        for s in sources {
            var (scanned, top) = try s.volume.map { try InputTree.items(of: $0, prefix: s.prefix) }
                ?? InputTree.scan(directory: s.directory, prefix: s.prefix, options: scan)
            if s.prefix.isEmpty && rootItem == nil { rootItem = top }
            // The prefix's own directories ("a", "a/b" for prefix "a/b"); the last one is the
            // source directory itself.
            var p = s.prefix
            if !p.isEmpty {
                scanned.append(top)
                p = Paths.parentInVolume(p)
            }
            while !p.isEmpty {
                scanned.append(InputItem(path: p, source: s.directory, relative: "", kind: .directory, mode: 0o755,
                                         size: 0, mtimeSeconds: 0, mtimeNanoseconds: 0))
                p = Paths.parentInVolume(p)
            }
            items += scanned
            counts.append((s, scanned.count))
        }
        root = Plan.entry(rootItem ?? InputItem(path: "", source: "", relative: "", kind: .directory, mode: 0o755, size: 0,
                                                mtimeSeconds: 0, mtimeNanoseconds: 0), options)
        // Sort by raw path bytes: the order the format requires and that reproducible mode needs.
        var order = Array(items.indices)
        let keysBytes = items.map { Array($0.path.utf8) }
        order.sort { Paths.precedes(keysBytes[$0], keysBytes[$1]) }
        var sourceOf: [Int: (source: WriterSource, index: Int)] = [:]
        var idx = 0
        for (k, (s, n)) in counts.enumerated() { for i in idx..<(idx + n) { sourceOf[i] = (s, k) }; idx += n }
        var previous: (path: [UInt8], isDirectory: Bool)? = nil
        // First path of each multiply-linked input file: later paths to it become links.
        var linked: [String: (entry: Int, region: String)] = [:]
        for i in order {
            let item = items[i]
            let (source, sourceIndex) = sourceOf[i]!
            let isDirectory = if case .directory = item.kind { true } else { false }
            if let p = previous, p.path == keysBytes[i] {
                // Two sources may share directories (prefixes); anything else is a conflict.
                if p.isDirectory && isDirectory { continue }
                throw FSPFError.badInput(path: item.source, reason: "two inputs map to the volume path '\(item.path)'")
            }
            previous = (keysBytes[i], isDirectory)
            let region = Region.of(item.path, in: regions)
            // An ephemeral region starts empty in every run: nothing below its path is recorded.
            if region.ephemeral { continue }
            var entry = Plan.entry(item, options)
            switch item.kind {
            case .directory:
                entry.content = .directory
            case .symlink(let target):
                entry.content = .symlink(target: target)
            case .file:
                // Hard links are stored once where both paths share a region (reproducible
                // volumes store every path, as version control does).
                let inode = item.inode.map { "\($0.dev):\($0.ino)" }
                if let inode, !options.reproducible, let first = linked[inode], first.region == region.path {
                    entry.linkOf = first.entry
                    entries.append(entry)
                    continue
                }
                if let inode, linked[inode] == nil { linked[inode] = (entries.count, region.path) }
                let job = FileJob(entryIndex: entries.count, item: item, region: region, segmentTarget: options.segmentBytes,
                                  output: sourceIndex)
                if let reader = source.volume, let e = item.volumeEntry { job.fromVolume = (reader, e) }
                if region.kind != .notProtected {
                    job.fileID = options.reproducible ? [] : Sodium.randomBytes(ProtectedFile.idSize)
                }
                if region.kind != .encrypted {
                    let plain = Paths.join(source.output, item.relative)
                    if Paths.firstComponent(item.relative) == ObjectStore.directoryName
                        || (Paths.join(source.output, SealedMetadata.fileName) == plain) {
                        throw FSPFError.badInput(path: item.source, reason: "name is reserved for the volume's own files")
                    }
                    job.plainRelative = item.relative
                    job.plainPath = plain
                    job.plainLocation = Layout.location(of: plain, base: metadataDirectory)
                    job.inPlace = Plan.sameFile(item.source, plain)
                }
                job.inline = options.inlineTrees && region.kind == .authenticated
                job.findsHoles = options.sparse && !options.reproducible && region.kind != .notProtected
                jobs.append(job)
            }
            entries.append(entry)
        }
    }

    /// An item's recorded attributes. Reproducible volumes keep what version control keeps: the
    /// executable bit, no owner, no extended attributes, one time for all (SOURCE_DATE_EPOCH).
    private static func entry(_ item: InputItem, _ options: WriterOptions) -> Entry {
        guard options.reproducible else {
            return Entry(path: item.path, mode: item.mode, mtimeSeconds: item.mtimeSeconds, mtimeNanoseconds: item.mtimeNanoseconds,
                         content: .directory, uid: item.uid, gid: item.gid, xattrs: item.xattrs)
        }
        let mode: UInt32
        switch item.kind {
        case .file: mode = item.mode & 0o111 != 0 ? 0o755 : 0o644
        case .directory: mode = 0o755
        case .symlink: mode = 0o777
        }
        return Entry(path: item.path, mode: mode, mtimeSeconds: options.reproducibleTime, mtimeNanoseconds: 0, content: .directory)
    }

    /// Source `k`'s output directory.
    func output(_ k: Int) throws -> Directory {
        try outputs.withLock { opened in
            if let d = opened[k] { return d }
            let s = sources[k]
            if s.outputDirectory == nil { try FileSystem.makeDirectories(s.output) }
            let d = try s.outputDirectory ?? Directory.open(s.output)
            opened[k] = d
            return d
        }
    }

    /// Object names (from file IDs); called once IDs are final. Their stores are made now,
    /// their fan-out directories as the objects are.
    func prepareOutputs() throws {
        for job in jobs where job.kind != .notProtected && !job.inline {
            let k = job.output
            if stores[k] == nil { stores[k] = try ObjectStore.open(in: try output(k), create: true, caching: true) }
            let name = ObjectStore.name(fileID: job.fileID)
            job.objectStore = stores[k]
            job.objectName = name
            job.objectPath = Paths.join(Paths.join(sources[k].output, ObjectStore.directoryName), name)
            job.objectLocation = Layout.location(of: job.objectPath!, base: metadataDirectory)
        }
    }

    /// Objects this build created (every protected file's, once `prepareOutputs` ran).
    var createdObjects: [String] {
        jobs.filter { $0.kind != .notProtected && !$0.inline && $0.objectLocation != nil }.map { $0.objectPath! }
    }

    /// After a failure: every object and every plain copy this build created.
    func removeOutputs() {
        for job in jobs {
            if job.kind != .notProtected, !job.inline, let store = job.objectStore, let name = job.objectName { store.remove(name) }
            if job.createdPlain, let p = job.plainRelative { _ = try? output(job.output).removeFile(p) }
        }
    }

    func reproducibleID(_ job: FileJob, keys: VolumeKeys) -> [UInt8] {
        // HMAC(identity key, path ‖ kind ‖ size ‖ chunk size ‖ SHA-256(segment digests)):
        // equal only for equal plaintext at the same place (FORMAT.md §6).
        var h = SHA256()
        h.update(UnsafeRawBufferPointer(job.segmentDigests!))
        var w = ByteWriter()
        w.putString(Array(job.volumePath.utf8))
        w.put(job.kind.rawValue)
        w.put(job.size)
        w.put(job.chunkSize)
        w.put(h.finish())
        return keys.identity("file id", w.bytes)
    }

    func metadata(reproducible: Bool, regions: [Region]) -> VolumeMetadata {
        var out = entries
        for job in jobs {
            out[job.entryIndex].content = .file(size: job.size, region: job.kind, protection: job.protection, plain: job.plainLocation)
        }
        // A link shares its first path's content and attributes (as the format decodes it).
        for (i, e) in out.enumerated() {
            if let first = e.linkOf {
                out[i] = out[first]
                out[i].path = e.path
                out[i].linkOf = first
            }
        }
        return VolumeMetadata(version: .current, reproducible: reproducible, regions: regions, root: root, entries: out)
    }

    static func sameFile(_ a: String, _ b: String) -> Bool {
        guard let x = FileSystem.status(a), let y = FileSystem.status(b) else { return false }
        return x.st_dev == y.st_dev && x.st_ino == y.st_ino
    }
}

import Dispatch
import Glibc
import Synchronization
import FSPFCrypto
import FSPFSystem

/// Runs one pass over all file jobs with `threads` workers pulling (file, segment) items.
/// A worker keeps to one file while it has segments left and otherwise starts a file nobody
/// writes yet: two threads writing one file serialise on its inode lock (the kernel holds it
/// through each write's copy, and the waiter spins), so files are shared only at the tail.
final class Engine: @unchecked Sendable {
    enum Pass { case hash, protect }

    let plan: Plan
    let keys: VolumeKeys
    let options: WriterOptions
    let progress: Progress?
    private let lock = Locked<Cursor>(Cursor())
    private let failure = Locked<FSPFError?>(nil)
    private let stop = AtomicFlag()

    struct Cursor {
        /// Next file nobody has started.
        var fresh = 0
        /// Next unclaimed segment of each started file that still has some.
        var started: [Int: Int] = [:]
    }

    init(plan: Plan, keys: VolumeKeys, options: WriterOptions, progress: Progress?) {
        self.plan = plan
        self.keys = keys
        self.options = options
        self.progress = progress
    }

    func run(pass: Pass) throws {
        lock.withLock { $0 = Cursor() }
        for job in plan.jobs { job.remaining.store(job.segmentCount, ordering: .relaxed) }
        let workers = max(1, min(options.threads, plan.jobs.reduce(0) { $0 + $1.segmentCount }))
        let maxSegmentBytes = Int(plan.jobs.map(\.segmentBytes).max() ?? 1)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: maxSegmentBytes, alignment: 4096)
            let leafSize = TreeGeometry.leafSize(.current)
            let tags = UnsafeMutableRawBufferPointer.allocate(byteCount: (maxSegmentBytes / Int(ChunkSize.minimum) + 1) * leafSize, alignment: 16)
            var previous: Int?
            defer {
                Sodium.zero(buffer)  // plaintext never outlives its use
                buffer.deallocate()
                tags.deallocate()
            }
            while !stop.isSet {
                if Interrupt.requested { record(FSPFError.interrupted); break }
                let item: (Int, Int)?
                do { item = try next(pass: pass, after: previous) } catch { record(error); break }
                guard let (index, segment) = item else { break }
                previous = index
                let job = plan.jobs[index]
                do {
                    try process(job, segment: segment, pass: pass, buffer: buffer, tags: tags)
                    if job.remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                        try finish(job, pass: pass)
                    }
                } catch {
                    record(error)
                }
            }
        }
        for job in plan.jobs { closeAll(job) }
        if let e = failure.withLock({ $0 }) { throw e }
    }

    private func record(_ error: any Error) {
        let e = error as? FSPFError ?? FSPFError.badInput(path: "", reason: "\(error)")
        failure.withLock { if $0 == nil { $0 = e } }
        stop.set()
    }

    /// Claims the next segment: the following one of the file this worker just worked on,
    /// else the first segment of a file nobody has started (opening it), else a segment of a
    /// file another worker is on.
    private func next(pass: Pass, after previous: Int?) throws -> (Int, Int)? {
        try lock.withLock { (c) throws -> (Int, Int)? in
            func claim(_ j: Int) -> (Int, Int) {
                let segment = c.started[j]!
                c.started[j] = segment + 1 < plan.jobs[j].segmentCount ? segment + 1 : nil
                return (j, segment)
            }
            if let p = previous, c.started[p] != nil { return claim(p) }
            while c.fresh < plan.jobs.count {
                let j = c.fresh
                c.fresh += 1
                let job = plan.jobs[j]
                if job.segmentCount == 0 || (pass == .hash && job.kind == .notProtected) { continue }
                try open(job, pass: pass)
                c.started[j] = 0
                return claim(j)
            }
            return c.started.keys.min().map(claim)
        }
    }

    private func open(_ job: FileJob, pass: Pass) throws {
        var st = stat()
        if job.fromVolume == nil {
            let src: FileDescriptor
            do { src = try FileDescriptor.openForReading(job.source) } catch {
                if case .io(_, _, let e)? = error as? FSPFError, e == EACCES || e == ENOENT || e == ELOOP {
                    throw FSPFError.noInput(path: job.source, reason: e == EACCES ? "permission denied" : "disappeared while encrypting")
                }
                throw error
            }
            st = try src.status()
            guard st.st_mode & S_IFMT == S_IFREG, UInt64(st.st_size) == job.size else {
                throw FSPFError.badInput(path: job.source, reason: "file changed while being read")
            }
            job.sourceFD = src
            if pass == .protect, options.reproducible, job.kind != .notProtected, !sameVersion(job.sourceStat, st) {
                throw FSPFError.badInput(path: job.source, reason: "file changed while being read")
            }
            job.sourceStat = st
        }
        if pass == .hash {
            job.segmentDigests = .allocate(byteCount: 32 * job.segmentCount, alignment: 8)
            return
        }
        if job.kind != .notProtected {
            let obj = job.inline ? try FileDescriptor.anonymous("fspf-tree") : try job.objectStore!.create(job.objectName!, flags: O_WRONLY)
            if job.findsHoles, let src = job.sourceFD, UInt64(st.st_blocks) * 512 < job.size {
                job.holes = Engine.holeChunks(try src.dataExtents(size: job.size), size: job.size, chunkSize: UInt64(job.chunkSize))
            }
            let p = job.protection!
            try obj.truncate(to: p.objectSize)
            try ObjectHeader.bytes(version: .current, kind: job.chunkKind, fileID: job.fileID).withUnsafeBytes { (b) throws in
                try obj.write(b, at: 0)
            }
            job.objectFD = obj
        }
        if let plain = job.plainRelative, !job.inPlace {
            // Through the output's descriptor: a link on the way or at the file is refused.
            let output = try plan.output(job.output)
            let out: FileDescriptor
            if let created = try? output.openFile(plain, O_WRONLY | O_CREAT | O_EXCL, mode: 0o644, makingParents: true) {
                job.createdPlain = true
                out = created
            } else {
                out = try output.openFile(plain, O_WRONLY | O_TRUNC)
            }
            job.plainFD = out
        }
    }

    private func sameVersion(_ a: stat, _ b: stat) -> Bool {
        a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size
            && a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec
            && a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec
    }

    /// Bytes read, sealed and written at a time within a segment: small enough to stay in the
    /// CPU cache between the read's copy, the cipher and the write's copy (a whole 4 MiB
    /// segment does not, and every byte then crosses memory three more times).
    static let pieceBytes = 256 << 10

    private func process(_ job: FileJob, segment: Int, pass: Pass,
                         buffer: UnsafeMutableRawBufferPointer, tags: UnsafeMutableRawBufferPointer) throws {
        let start = UInt64(segment) * job.segmentBytes
        let end = min(start + job.segmentBytes, job.storedSize)
        let dataCount = Int(end - start)
        let realCount = job.size > start ? Int(min(end, job.size) - start) : 0
        let hashed = options.reproducible && job.kind != .notProtected

        /// Reads source bytes [from, to) of the segment into the buffer, zero-filling what lies
        /// past the file's end (padding).
        func load(_ from: Int, _ to: Int) throws {
            let real = min(to, realCount)
            if real > from {
                let got = try job.readSource(into: UnsafeMutableRawBufferPointer(rebasing: buffer[from..<real]),
                                             at: start + UInt64(from))
                guard got == real - from else { throw FSPFError.badInput(path: job.source, reason: "file changed while being read (shrank)") }
            }
            if to > max(from, real) { Sodium.zero(UnsafeMutableRawBufferPointer(rebasing: buffer[max(from, real)..<to])) }
        }

        if hashed {
            // The whole segment first: what is encrypted must be what was hashed into the file
            // ID, or the nonce rule breaks, so nothing is sealed before the digest matches.
            try load(0, dataCount)
            var h = SHA256()
            h.update(UnsafeRawBufferPointer(rebasing: buffer[0..<realCount]))
            let digest = h.finish()
            let slot = UnsafeMutableRawBufferPointer(rebasing: job.segmentDigests![(segment * 32)..<(segment * 32 + 32)])
            if pass == .hash {
                digest.withUnsafeBytes { slot.copyMemory(from: $0) }
                return
            }
            guard digest.withUnsafeBytes({ Sodium.equal($0, UnsafeRawBufferPointer(slot)) }) else {
                throw FSPFError.badInput(path: job.source, reason: "file changed while being read")
            }
        }

        let cs = Int(job.chunkSize)
        let firstChunk = start / UInt64(cs)
        let leafSize = TreeGeometry.leafSize(.current)
        let pieceSize = max(cs, Engine.pieceBytes / cs * cs)
        let cipher = ChunkCipher.forCurrentThread()
        let chunkTotal = job.protection?.chunkCount ?? 0
        // Segments start on chunk boundaries: the chunk at byte `offset` of the segment is the
        // segment's (offset / cs)th, and so is its leaf.
        func chunkIndex(_ offset: Int) -> UInt64 { firstChunk + UInt64(offset / cs) }
        func leaf(_ offset: Int) -> UnsafeMutableRawBufferPointer {
            let k = offset / cs
            return UnsafeMutableRawBufferPointer(rebasing: tags[(k * leafSize)..<((k + 1) * leafSize)])
        }
        var at = 0
        repeat {
            let to = min(at + pieceSize, dataCount)
            // Runs of chunks that hold data, between holes: a hole is neither read nor written,
            // and its leaf stays zero.
            var runStart = at
            repeat {  // at least once: an empty file still has its one, empty, chunk
                if job.isHole(chunkIndex(runStart)) {
                    Sodium.zero(leaf(runStart))
                    runStart += cs
                    continue
                }
                var runEnd = min(runStart + cs, to)
                while runEnd < to && !job.isHole(chunkIndex(runEnd)) { runEnd = min(runEnd + cs, to) }
                if !hashed { try load(runStart, runEnd) }
                if let plain = job.plainFD, min(runEnd, realCount) > runStart {
                    try plain.write(UnsafeRawBufferPointer(rebasing: buffer[runStart..<min(runEnd, realCount)]), at: start + UInt64(runStart))
                }
                if job.kind != .notProtected {
                    // After the load: reading from a volume (fspf upgrade) uses this thread's cipher
                    // with the source file's key, and sealing under it gave objects that never open.
                    cipher.select(keys, fileID: job.fileID)
                    var offset = runStart
                    repeat {
                        let count = min(cs, runEnd - offset)
                        let index = chunkIndex(offset)
                        ChunkCodec.seal(UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<(offset + count)]), kind: job.chunkKind,
                                        at: .init(index: index, final: index == chunkTotal - 1), leaf: leaf(offset), cipher)
                        offset += count
                    } while offset < runEnd
                    if job.kind == .encrypted {
                        try job.objectFD!.write(UnsafeRawBufferPointer(rebasing: buffer[runStart..<runEnd]),
                                                at: UInt64(ObjectHeader.size) + start + UInt64(runStart))
                    }
                }
                runStart = runEnd
            } while runStart < to
            at = to
        } while at < dataCount
        if job.kind != .notProtected {
            let leaves = max(1, (dataCount + cs - 1) / cs)
            try job.objectFD!.write(UnsafeRawBufferPointer(rebasing: tags[0..<(leaves * leafSize)]),
                                    at: job.protection!.treeOffset + firstChunk * UInt64(leafSize))
        }
        progress?.add(bytes: UInt64(realCount))
    }

    /// The chunks wholly inside holes of the input (and wholly inside its content: padding is
    /// never a hole), as spans.
    static func holeChunks(_ data: [Range<UInt64>], size: UInt64, chunkSize cs: UInt64) -> [HoleSpan] {
        var spans: [HoleSpan] = []
        let contentChunks = size / cs
        var next: UInt64 = 0  // first byte not yet known to hold data
        func hole(_ from: UInt64, _ to: UInt64) {
            let first = (from + cs - 1) / cs
            let end = min(to / cs, contentChunks)
            guard end > first else { return }
            if let last = spans.last, last.end == first { spans[spans.count - 1].count += end - first } else {
                spans.append(HoleSpan(first: first, count: end - first))
            }
        }
        for r in data {
            if r.lowerBound > next { hole(next, r.lowerBound) }
            next = max(next, r.upperBound)
        }
        if size > next { hole(next, size) }
        return spans
    }

    /// Last segment of a file done: check the source did not change, build the tree's upper
    /// levels from the tags on disk, compute the root, close.
    private func finish(_ job: FileJob, pass: Pass) throws {
        if let src = job.sourceFD {
            var probe: UInt8 = 0
            let extra = try withUnsafeMutableBytes(of: &probe) { (b) throws in try src.read(into: b, at: job.size) }
            let st = try src.status()
            guard extra == 0, sameVersion(job.sourceStat, st) else {
                throw FSPFError.badInput(path: job.source, reason: "file changed while being read")
            }
        }
        if pass == .protect, job.kind != .notProtected {
            job.root = try buildTree(job)
            if job.inline {
                let p = job.protection!
                var tree = [UInt8](repeating: 0, count: Int(p.geometry.byteCount))
                let n = try tree.withUnsafeMutableBytes { try job.objectFD!.read(into: $0, at: p.treeOffset) }
                guard n == tree.count else { throw FSPFError.io(path: job.source, operation: "read back tag tree", errno: EIO) }
                job.inlineTree = tree
            }
        }
        if pass == .protect { progress?.addFile() }
        closeAll(job)
    }

    private func closeAll(_ job: FileJob) {
        job.sourceFD = nil
        job.objectFD = nil
        job.plainFD = nil
    }

    private func buildTree(_ job: FileJob) throws -> [UInt8] {
        let p = job.protection!
        let g = p.geometry
        let obj = job.inline ? job.objectFD! : try job.objectStore!.reopen(job.objectName!)
        let top = try g.buildUpperLevels(
            read: { offset, into in
                guard try obj.read(into: into, at: p.treeOffset + offset) == into.count else {
                    throw FSPFError.io(path: job.objectPath ?? job.volumePath, operation: "read back", errno: EIO)
                }
            },
            write: { offset, bytes in try obj.write(bytes, at: p.treeOffset + offset) })
        return g.root(fileID: p.fileID, kind: p.kind, size: job.size, storedSize: p.storedSize,
                      chunkSize: p.chunkSize, topHash: top)
    }
}

import Dispatch
import Glibc
import Synchronization

/// Runs one pass over all file jobs with `threads` workers pulling (file, segment) items.
final class Engine: @unchecked Sendable {
    enum Pass { case hash, protect }

    let plan: Plan
    let keys: VolumeKeys
    let options: WriterOptions
    let progress: Progress?
    private let lock = Locked<Cursor>(Cursor())
    private let failure = Locked<FSPFError?>(nil)
    private let stop = AtomicFlag()

    struct Cursor { var job = 0; var segment = 0 }

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
            let tags = UnsafeMutableRawBufferPointer.allocate(byteCount: maxSegmentBytes / Int(ChunkSize.minimum) * 16 + 16, alignment: 16)
            defer {
                Sodium.zero(buffer)  // plaintext never outlives its use
                buffer.deallocate()
                tags.deallocate()
            }
            while !stop.isSet {
                if Interrupt.requested { record(FSPFError.interrupted); break }
                let item: (FileJob, Int)?
                do { item = try next(pass: pass) } catch { record(error); break }
                guard let (job, segment) = item else { break }
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

    /// Claims the next segment; opens a file's descriptors when its first segment is claimed.
    private func next(pass: Pass) throws -> (FileJob, Int)? {
        try lock.withLock { (c) throws -> (FileJob, Int)? in
            while c.job < plan.jobs.count {
                let job = plan.jobs[c.job]
                if c.segment < job.segmentCount && !(pass == .hash && job.kind == .notProtected) {
                    if c.segment == 0 { try open(job, pass: pass) }
                    defer { c.segment += 1 }
                    return (job, c.segment)
                }
                c.job += 1
                c.segment = 0
            }
            return nil
        }
    }

    private func open(_ job: FileJob, pass: Pass) throws {
        let src: FileDescriptor
        do { src = try FileDescriptor.openForReading(job.source) } catch {
            if case .io(_, _, let e)? = error as? FSPFError, e == EACCES || e == ENOENT || e == ELOOP {
                throw FSPFError.noInput(path: job.source, reason: e == EACCES ? "permission denied" : "disappeared while encrypting")
            }
            throw error
        }
        let st = try src.status()
        guard st.st_mode & S_IFMT == S_IFREG, UInt64(st.st_size) == job.size else {
            throw FSPFError.badInput(path: job.source, reason: "file changed while being read")
        }
        job.sourceFD = src
        if pass == .hash {
            job.segmentDigests = .allocate(byteCount: 32 * job.segmentCount, alignment: 8)
            job.sourceStat = st
            return
        }
        if options.reproducible, job.kind != .notProtected, !sameVersion(job.sourceStat, st) {
            throw FSPFError.badInput(path: job.source, reason: "file changed while being read")
        }
        job.sourceStat = st
        if let objectPath = job.objectPath, job.kind != .notProtected {
            let obj = try FileDescriptor.open(objectPath, O_WRONLY | O_CREAT | O_EXCL, mode: 0o644)
            let p = job.protection!
            try obj.truncate(to: p.objectSize)
            try ObjectHeader.bytes(kind: job.chunkKind, fileID: job.fileID).withUnsafeBytes { (b) throws in
                try obj.write(b, at: 0)
            }
            job.objectFD = obj
        }
        if let plain = job.plainPath, !job.inPlace {
            let out = try FileDescriptor.open(plain, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
            job.plainFD = out
        }
    }

    private func sameVersion(_ a: stat, _ b: stat) -> Bool {
        a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size
            && a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec
            && a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec
    }

    private func process(_ job: FileJob, segment: Int, pass: Pass,
                         buffer: UnsafeMutableRawBufferPointer, tags: UnsafeMutableRawBufferPointer) throws {
        let start = UInt64(segment) * job.segmentBytes
        let end = min(start + job.segmentBytes, job.storedSize)
        let dataCount = Int(end - start)
        let realCount = job.size > start ? Int(min(end, job.size) - start) : 0
        let data = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<dataCount])
        let got = try job.sourceFD!.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<realCount]), at: start)
        guard got == realCount else { throw FSPFError.badInput(path: job.source, reason: "file changed while being read (shrank)") }
        if dataCount > realCount { Sodium.zero(UnsafeMutableRawBufferPointer(rebasing: buffer[realCount..<dataCount])) }

        if options.reproducible && job.kind != .notProtected {
            var h = SHA256()
            h.update(UnsafeRawBufferPointer(rebasing: buffer[0..<realCount]))
            let digest = h.finish()
            let slot = UnsafeMutableRawBufferPointer(rebasing: job.segmentDigests![(segment * 32)..<(segment * 32 + 32)])
            if pass == .hash {
                digest.withUnsafeBytes { slot.copyMemory(from: $0) }
                return
            }
            // What is encrypted must be what was hashed into the file ID, or the nonce rule breaks.
            guard digest.withUnsafeBytes({ Sodium.equal($0, UnsafeRawBufferPointer(slot)) }) else {
                throw FSPFError.badInput(path: job.source, reason: "file changed while being read")
            }
        }

        if let plain = job.plainFD {
            try plain.write(UnsafeRawBufferPointer(rebasing: buffer[0..<realCount]), at: start)
        }
        if job.kind != .notProtected {
            let cipher = ChunkCipher.forCurrentThread()
            cipher.select(keys, fileID: job.fileID)
            let protection = job.protection!
            let chunkCount = protection.chunkCount
            let cs = Int(job.chunkSize)
            let firstChunk = start / UInt64(cs)
            var offset = 0
            var n = 0
            repeat {
                let count = min(cs, dataCount - offset)
                let chunk = UnsafeMutableRawBufferPointer(rebasing: data[offset..<(offset + count)])
                let tag = UnsafeMutableRawBufferPointer(rebasing: tags[(n * 16)..<(n * 16 + 16)])
                let index = firstChunk + UInt64(n)
                let final = index == chunkCount - 1
                if job.kind == .encrypted {
                    cipher.seal(index: index, final: final, data: chunk, tag: tag)
                } else {
                    cipher.mac(index: index, final: final, data: UnsafeRawBufferPointer(chunk), tag: tag)
                }
                offset += count
                n += 1
            } while offset < dataCount
            let obj = job.objectFD!
            if job.kind == .encrypted {
                try obj.write(UnsafeRawBufferPointer(data), at: UInt64(ObjectHeader.size) + start)
            }
            try obj.write(UnsafeRawBufferPointer(rebasing: tags[0..<(n * 16)]), at: protection.treeOffset + firstChunk * 16)
        }
        progress?.add(bytes: UInt64(realCount))
    }

    /// Last segment of a file done: check the source did not change, build the tree's upper
    /// levels from the tags on disk, compute the root, close.
    private func finish(_ job: FileJob, pass: Pass) throws {
        var probe: UInt8 = 0
        let extra = try withUnsafeMutableBytes(of: &probe) { (b) throws in try job.sourceFD!.read(into: b, at: job.size) }
        let st = try job.sourceFD!.status()
        guard extra == 0, sameVersion(job.sourceStat, st) else {
            throw FSPFError.badInput(path: job.source, reason: "file changed while being read")
        }
        if pass == .protect, job.kind != .notProtected {
            job.root = try buildTree(job)
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
        let obj = try FileDescriptor.open(job.objectPath!, O_RDWR)
        var block = [UInt8](repeating: 0, count: TreeGeometry.blockSize)
        for level in 0..<g.topLevel {
            var out: [UInt8] = []
            out.reserveCapacity(TreeGeometry.blockSize)
            var written: UInt64 = 0
            let blocks = g.blockCount(level: level)
            for b in 0..<blocks {
                let range = g.blockRange(level: level, index: b)
                let hash = try block.withUnsafeMutableBytes { (buf) throws -> [UInt8] in
                    let part = UnsafeMutableRawBufferPointer(rebasing: buf[0..<range.count])
                    _ = try obj.read(into: part, at: p.treeOffset + range.offset)
                    return TreeGeometry.nodeHash(level: level, index: b, block: UnsafeRawBufferPointer(part))
                }
                out += hash
                if out.count == TreeGeometry.blockSize || b == blocks - 1 {
                    try out.withUnsafeBytes { (o) throws in
                        try obj.write(o, at: p.treeOffset + g.levelOffsets[level + 1] + written)
                    }
                    written += UInt64(out.count)
                    out.removeAll(keepingCapacity: true)
                }
            }
        }
        let top = g.blockRange(level: g.topLevel, index: 0)
        let topHash = try block.withUnsafeMutableBytes { (buf) throws -> [UInt8] in
            let part = UnsafeMutableRawBufferPointer(rebasing: buf[0..<top.count])
            _ = try obj.read(into: part, at: p.treeOffset + top.offset)
            return TreeGeometry.nodeHash(level: g.topLevel, index: 0, block: UnsafeRawBufferPointer(part))
        }
        return TreeGeometry.root(fileID: p.fileID, kind: p.kind, size: job.size, storedSize: p.storedSize,
                                 chunkSize: p.chunkSize, levels: g.levels, topHash: topHash)
    }
}

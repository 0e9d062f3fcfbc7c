import Dispatch
import Glibc
import Synchronization
import FSPFCrypto
import FSPFSystem

/// One thing on disk that is not what the volume's author wrote.
public struct Problem: Sendable, CustomStringConvertible, Equatable {
    /// Volume path of the affected file, or the on-disk path of a stray piece.
    public var path: String
    public var chunk: UInt64?
    /// Plaintext byte range the problem covers (inclusive).
    public var bytes: ClosedRange<UInt64>?
    public var message: String

    public var description: String {
        var s = path
        if let c = chunk { s += ": chunk \(c)" }
        if let b = bytes { s += " (bytes \(b.lowerBound)-\(b.upperBound))" }
        return s + ": " + message
    }
}

public struct VerifyReport: Sendable {
    public var problems: [Problem]
    public var filesChecked: Int
    public var chunksChecked: UInt64
    public var bytesChecked: UInt64
    /// Objects a read-write mount wrote that no version names (it stopped before sealing them):
    /// never read, not problems; the next read-write mount removes them.
    public var unsealed: [String] = []
    public var ok: Bool { problems.isEmpty }
}

/// Checks every piece of a volume and reports every problem with file, chunk and byte
/// range, instead of stopping at the first like a reader does.
public enum Verifier {
    public static func verify(_ reader: VolumeReader, threads: Int = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))) -> VerifyReport {
        let entries = reader.metadata.entries
        let next = Atomic<Int>(0)
        let results = Locked<(problems: [Problem], chunks: UInt64, bytes: UInt64)>(([], 0, 0))
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, entries.count))) { _ in
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                guard i < entries.count else { break }
                let r = checkEntry(reader, i)
                results.withLock { $0.problems += r.problems; $0.chunks += r.chunks; $0.bytes += r.bytes }
            }
        }
        var (problems, chunks, bytes) = results.withLock { $0 }
        problems.sort { ($0.path, $0.chunk ?? 0) < ($1.path, $1.chunk ?? 0) }
        let (stray, unsealed) = strayPieces(reader)
        problems += stray
        let files = entries.filter { if case .file = $0.content { return true } else { return false } }.count
        return VerifyReport(problems: problems, filesChecked: files, chunksChecked: chunks, bytesChecked: bytes, unsealed: unsealed)
    }

    private static func checkEntry(_ reader: VolumeReader, _ i: Int) -> (problems: [Problem], chunks: UInt64, bytes: UInt64) {
        let e = reader.metadata.entries[i]
        // A hard link's data is its first path's, checked there.
        guard e.linkOf == nil, case .file(_, _, let protection, let plain) = e.content else { return ([], 0, 0) }
        guard let p = protection else {
            // Not-protected content is unverified by design; only its presence is checked.
            if let plain, !reader.storage.exists(plain) {
                return ([Problem(path: e.path, message: "not-protected file \(plain) is missing")], 0, 0)
            }
            return ([], 0, 0)
        }
        var problems: [Problem] = []
        let cs = UInt64(p.chunkSize)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(cs), alignment: 4096)
        defer { Sodium.zero(buffer); buffer.deallocate() }
        let cipher = ChunkCipher.forCurrentThread()
        let data: any StoredFile
        do { data = try reader.dataHandle(i, p) } catch {
            return ([Problem(path: e.path, message: describe(error))], 0, 0)
        }
        let perBlock = UInt64(p.geometry.leavesPerBlock)
        var chunks: UInt64 = 0
        var chunk: UInt64 = 0
        // Every chunk over the whole stored size (padding included), so every stored byte is checked.
        while chunk < p.chunkCount {
            let start = chunk * cs
            let length = Int(min(cs, p.storedSize - start))
            let range = start...max(start, start + UInt64(max(length, 1)) - 1)
            do {
                cipher.select(reader.keys, fileID: p.fileID)
                if p.isHole(chunk) {
                    // The leaf of a hole is zero; the disk holds nothing (or zeros) there.
                    if try reader.leaf(i, p, chunk).contains(where: { $0 != 0 }) {
                        problems.append(Problem(path: e.path, chunk: chunk, bytes: range, message: "a hole's leaf is not zero"))
                    }
                } else {
                    let result = try reader.openChunk(i, p, chunk, in: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length]), cipher)
                    if result != .authentic { problems.append(Problem(path: e.path, chunk: chunk, bytes: range, message: result.rawValue)) }
                }
            } catch {
                // A bad tree block leaves every chunk below it unverifiable: report the span once.
                let last = min(p.chunkCount, (chunk / perBlock + 1) * perBlock) - 1
                problems.append(Problem(path: e.path, chunk: chunk,
                                        bytes: start...max(start, min(p.storedSize, (last + 1) * cs) - 1),
                                        message: describe(error) + (last > chunk ? " (chunks \(chunk)-\(last) unverifiable)" : "")))
                chunk = last
            }
            chunks += 1
            chunk += 1
        }
        problems += dataInHoles(e, p, data, buffer)
        return (problems, chunks, p.storedSize)
    }

    /// Holes are never read, so bytes written into one could never be served; they are still
    /// reported, so that `verify` accounts for every byte on disk.
    private static func dataInHoles(_ e: Entry, _ p: ProtectedFile, _ data: any StoredFile,
                                    _ buffer: UnsafeMutableRawBufferPointer) -> [Problem] {
        guard !p.holes.isEmpty else { return [] }
        let cs = UInt64(p.chunkSize)
        let base: UInt64 = p.kind == .encrypted ? UInt64(ObjectHeader.size) : 0
        guard let extents = try? data.dataExtents(size: base + p.storedSize) else { return [] }
        var problems: [Problem] = []
        for h in p.holes {
            let from = base + h.first * cs, to = base + h.end * cs
            for x in extents where x.upperBound > from && x.lowerBound < to {
                var at = max(x.lowerBound, from)
                let end = min(x.upperBound, to)
                while at < end {
                    let n = Int(min(UInt64(buffer.count), end - at))
                    let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n])
                    let got = (try? data.read(into: chunk, at: at)) ?? 0
                    if chunk[0..<got].contains(where: { $0 != 0 }) {
                        let c = (at - base) / cs
                        problems.append(Problem(path: e.path, chunk: c, bytes: (c * cs)...((c + 1) * cs - 1),
                                                message: "data stored where the file has a hole"))
                        break
                    }
                    at += UInt64(n)
                }
            }
        }
        return problems
    }

    private static func describe(_ error: any Error) -> String {
        if case .integrity(_, let reason)? = error as? FSPFError { return reason }
        return "\(error)"
    }

    /// Stored files beside the volume that the metadata does not reference.
    static func strayPieces(_ reader: VolumeReader) -> (stray: [Problem], unsealed: [String]) {
        var objects: [String] = [], plaintext: [String] = []
        for e in reader.metadata.entries {
            guard case .file(_, _, let p, let plain) = e.content else { continue }
            if let p, p.inlineTree == nil { objects.append(p.object) }
            if let plain { plaintext.append(plain) }
        }
        let (stray, unsealed) = reader.storage.unreferenced(objects: objects, plaintext: plaintext)
        return (stray.map { Problem(path: $0, message: "unexpected file: not part of this volume") }, unsealed)
    }
}

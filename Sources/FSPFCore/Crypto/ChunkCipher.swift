import FSPFCrypto
import Glibc
import Synchronization
import FSPFSystem

/// What a chunk tag protects: the region kind is bound into the AAD so an authenticated-file
/// tag can never stand in for an encrypted chunk's.
public enum ChunkKind: UInt8, Sendable {
    case encrypted = 1
    case authenticated = 2
}

/// A thread's chunk cipher: one reused GCM context plus the current file key in locked
/// memory. Obtain with `ChunkCipher.forCurrentThread()`; never share across threads.
final class ChunkCipher {
    private let gcm = GCMContext()
    /// The leaves' hash (format 2), reused for every chunk.
    let sha256 = SHA256Context()
    private let fileKeyMemory = GuardedBuffer(count: 32)
    private var fileKey: UnsafeMutableRawBufferPointer { fileKeyMemory.bytes }
    private var currentSerial: UInt64 = 0
    private var currentFileID: [UInt8] = []
    private var nonce = [UInt8](repeating: 0, count: GCMContext.nonceSize)
    private var aad = [UInt8](repeating: 0, count: 42)

    init() {}

    private var scratchBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 4096)

    deinit {
        Sodium.zero(scratchBuffer)
        scratchBuffer.deallocate()
    }

    /// Selects the file whose chunks follow; derives its key only when the file changes.
    func select(_ keys: VolumeKeys, fileID: [UInt8]) {
        if keys.serial == currentSerial && fileID == currentFileID { return }
        keys.deriveFileKey(fileID: fileID, into: fileKey)
        gcm.setKey(UnsafeRawBufferPointer(fileKey))
        currentSerial = keys.serial
        currentFileID = fileID
        aad.replaceSubrange(0..<32, with: fileID)
    }

    /// nonce = chunk index (u64 LE) ‖ generation (u32 LE, 0 unless a read-write mount encrypted
    /// the chunk again); AAD = file ID ‖ index (u64 LE) ‖ final ‖ kind.
    private func prepare(index: UInt64, generation: UInt32 = 0, final: Bool, kind: ChunkKind) {
        withUnsafeBytes(of: index.littleEndian) { b in
            for i in 0..<8 { nonce[i] = b[i]; aad[32 + i] = b[i] }
        }
        withUnsafeBytes(of: generation.littleEndian) { b in for i in 0..<4 { nonce[8 + i] = b[i] } }
        aad[40] = final ? 1 : 0
        aad[41] = kind.rawValue
    }

    func seal(index: UInt64, generation: UInt32 = 0, final: Bool, data: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer) {
        prepare(index: index, generation: generation, final: final, kind: .encrypted)
        if ChunkCipher.recording.load(ordering: .relaxed) { ChunkCipher.nonceLog.withLock { $0.append(currentFileID + nonce) } }
        nonce.withUnsafeBytes { n in aad.withUnsafeBytes { a in gcm.seal(nonce: n, aad: a, data: data, tag: tag) } }
    }

    func open(index: UInt64, generation: UInt32 = 0, final: Bool, data: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer) -> Bool {
        prepare(index: index, generation: generation, final: final, kind: .encrypted)
        return nonce.withUnsafeBytes { n in aad.withUnsafeBytes { a in gcm.open(nonce: n, aad: a, data: data, tag: tag) } }
    }

    func mac(index: UInt64, final: Bool, data: UnsafeRawBufferPointer, tag: UnsafeMutableRawBufferPointer) {
        prepare(index: index, final: final, kind: .authenticated)
        nonce.withUnsafeBytes { n in aad.withUnsafeBytes { a in gcm.mac(nonce: n, aad: a, data: data, tag: tag) } }
    }

    func verifyMAC(index: UInt64, final: Bool, data: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer) -> Bool {
        var computed = (UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &computed) { c in
            mac(index: index, final: final, data: data, tag: c)
            return Sodium.equal(UnsafeRawBufferPointer(c), tag)
        }
    }

    /// A per-thread work buffer of at least `count` bytes (for partial-chunk reads).
    func scratch(_ count: Int) -> UnsafeMutableRawBufferPointer {
        if scratchBuffer.count < count {
            Sodium.zero(scratchBuffer)
            scratchBuffer.deallocate()
            scratchBuffer = .allocate(byteCount: count, alignment: 4096)
        }
        return UnsafeMutableRawBufferPointer(rebasing: scratchBuffer[0..<count])
    }

    /// Seals or opens the metadata with the metadata key (a separate, one-shot context).
    static func sealMetadata(_ keys: VolumeKeys, nonce: [UInt8], aad: [UInt8], data: inout [UInt8]) -> [UInt8] {
        let g = GCMContext()
        keys.metadataKey.withBytes { g.setKey($0) }
        var tag = [UInt8](repeating: 0, count: 16)
        nonce.withUnsafeBytes { n in aad.withUnsafeBytes { a in data.withUnsafeMutableBytes { d in tag.withUnsafeMutableBytes { t in
            g.seal(nonce: n, aad: a, data: d, tag: t)
        } } } }
        return tag
    }

    static func openMetadata(_ keys: VolumeKeys, nonce: [UInt8], aad: [UInt8], data: inout [UInt8], tag: [UInt8]) -> Bool {
        let g = GCMContext()
        keys.metadataKey.withBytes { g.setKey($0) }
        return nonce.withUnsafeBytes { n in aad.withUnsafeBytes { a in data.withUnsafeMutableBytes { d in tag.withUnsafeBytes { t in
            g.open(nonce: n, aad: a, data: d, tag: t)
        } } } }
    }

    /// Every (file ID ‖ nonce) a chunk encryption used while `recording` is on: the tests'
    /// evidence that no pair is used twice (FORMAT.md §9).
    static let recording = Atomic<Bool>(false)
    static let nonceLog = Locked<[[UInt8]]>([])

    // Per-thread instances, released by the thread's exit.
    private static let threadKey: pthread_key_t = {
        var k = pthread_key_t()
        let r = pthread_key_create(&k) { p in
            if let p { Unmanaged<ChunkCipher>.fromOpaque(p).release() }
        }
        precondition(r == 0, "pthread_key_create failed")
        return k
    }()

    static func forCurrentThread() -> ChunkCipher {
        if let p = pthread_getspecific(threadKey) {
            return Unmanaged<ChunkCipher>.fromOpaque(p).takeUnretainedValue()
        }
        let c = ChunkCipher()
        pthread_setspecific(threadKey, Unmanaged.passRetained(c).toOpaque())
        return c
    }
}

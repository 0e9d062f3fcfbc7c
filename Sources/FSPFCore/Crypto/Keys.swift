import CSodium
import Glibc
import Synchronization

/// A 32-byte volume key and the subkeys derived from it with HKDF-SHA256 (docs/FORMAT.md §3).
/// Every subkey has its own label, so no key is ever used by two different constructions.
public final class VolumeKeys: Sendable {
    public static let keySize = 32
    public static let tagSize = 16

    public let key: SecureBytes
    let metadataKey: SecureBytes
    let commitmentKey: SecureBytes
    let identityKey: SecureBytes
    /// Distinguishes key sets in per-thread caches.
    let serial: UInt64

    private static let serials = Atomic<UInt64>(1)
    static let fixedSalt = Array("FSPF v1".utf8)

    public init(key: SecureBytes) throws {
        guard key.count == VolumeKeys.keySize else {
            throw FSPFError.usage("a volume key is \(VolumeKeys.keySize) bytes (64 hex digits), got \(key.count) bytes")
        }
        self.key = key
        func derive(_ label: String) -> SecureBytes {
            SecureBytes(count: 32) { out in
                key.withBytes { KDF.hkdf(ikm: $0, salt: VolumeKeys.fixedSalt, info: Array(label.utf8), into: out) }
            }
        }
        metadataKey = derive("metadata key")
        commitmentKey = derive("key commitment")
        identityKey = derive("file identity")
        serial = VolumeKeys.serials.add(1, ordering: .relaxed).newValue
    }

    public static func generate() -> VolumeKeys {
        try! VolumeKeys(key: SecureBytes.random(count: keySize))
    }

    /// Parses a key given as 64 hex digits (surrounding white space ignored) or as 32 raw bytes.
    public static func parse(_ bytes: inout [UInt8], source: String) throws -> VolumeKeys {
        defer { bytes.withUnsafeMutableBytes { Sodium.zero($0) } }
        var raw: [UInt8]
        if bytes.count == keySize {
            raw = bytes
        } else {
            let trimmed = bytes.filter { !($0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09) }
            guard trimmed.count == 2 * keySize, let decoded = Hex.decode(trimmed) else {
                throw FSPFError.usage("\(source): not a volume key (expected 64 hex digits or 32 raw bytes)")
            }
            raw = decoded
        }
        return try VolumeKeys(key: SecureBytes(consuming: &raw))
    }

    /// Per-file content key: HKDF-SHA256(volume key, salt = file ID, info = label).
    func deriveFileKey(fileID: [UInt8], into out: UnsafeMutableRawBufferPointer) {
        key.withBytes { KDF.hkdf(ikm: $0, salt: fileID, info: Array("file content key".utf8), into: out) }
    }

    /// Key commitment stored in the metadata header: HMAC(commitment key, nonce). Lets a
    /// reader tell "wrong key" from "tampered metadata" and makes the seal key-committing.
    func commitment(nonce: [UInt8]) -> [UInt8] {
        commitmentKey.withBytes { KDF.hmac(key: $0, Array("commit".utf8) + nonce) }
    }

    /// Deterministic identity for reproducible mode: HMAC(identity key, label ‖ message).
    func identity(_ label: String, _ message: [UInt8]) -> [UInt8] {
        identityKey.withBytes { KDF.hmac(key: $0, Array(label.utf8) + [0] + message) }
    }
}

/// Parses a volume tag (32 hex digits).
public func parseTag(_ text: String, source: String) throws -> [UInt8] {
    let t = text.trimmingWhitespace
    guard t.utf8.count == 2 * VolumeKeys.tagSize, let tag = Hex.decode(t) else {
        throw FSPFError.usage("\(source): not a volume tag (expected 32 hex digits)")
    }
    return tag
}

extension String {
    var trimmingWhitespace: String {
        let ws: Set<Character> = [" ", "\n", "\r", "\t"]
        guard let s = firstIndex(where: { !ws.contains($0) }), let e = lastIndex(where: { !ws.contains($0) }) else { return "" }
        return String(self[s...e])
    }
}

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
    private let fileKey: UnsafeMutableRawBufferPointer
    private var currentSerial: UInt64 = 0
    private var currentFileID: [UInt8] = []
    private var nonce = [UInt8](repeating: 0, count: GCMContext.nonceSize)
    private var aad = [UInt8](repeating: 0, count: 42)

    init() {
        Sodium.ensureInitialized()
        fileKey = UnsafeMutableRawBufferPointer(start: sodium_malloc(32)!, count: 32)
    }

    private var scratchBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 4096)

    deinit {
        sodium_free(fileKey.baseAddress)
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

    /// nonce = chunk index (u64 LE) ‖ 0x00000000; AAD = file ID ‖ index (u64 LE) ‖ final ‖ kind.
    private func prepare(index: UInt64, final: Bool, kind: ChunkKind) {
        withUnsafeBytes(of: index.littleEndian) { b in
            for i in 0..<8 { nonce[i] = b[i]; aad[32 + i] = b[i] }
        }
        aad[40] = final ? 1 : 0
        aad[41] = kind.rawValue
    }

    func seal(index: UInt64, final: Bool, data: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer) {
        prepare(index: index, final: final, kind: .encrypted)
        nonce.withUnsafeBytes { n in aad.withUnsafeBytes { a in gcm.seal(nonce: n, aad: a, data: data, tag: tag) } }
    }

    func open(index: UInt64, final: Bool, data: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer) -> Bool {
        prepare(index: index, final: final, kind: .encrypted)
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

import Glibc
import Synchronization
import FSPFCrypto
import FSPFSystem

/// A 32-byte volume key and the subkeys derived from it with HKDF-SHA256 (docs/FORMAT.md §3).
/// Every subkey has its own label, so no key is ever used by two different constructions.
public final class VolumeKeys: Sendable {
    public static let keySize = 32

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

import CSodium

/// libsodium's sealed box: a message to the holder of an X25519 secret key, from an ephemeral
/// sender key (X25519 + XSalsa20-Poly1305). The key server seals each release to the client's
/// one-time key, so only that process can open it, whatever happens to TLS.
public enum SealedBox {
    public static let publicKeySize = Int(crypto_box_PUBLICKEYBYTES)

    public static func seal(_ message: [UInt8], to publicKey: [UInt8]) throws -> [UInt8] {
        guard publicKey.count == publicKeySize else { throw SealedBoxError("a public key is \(publicKeySize) bytes, got \(publicKey.count)") }
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: message.count + crypto_box_sealbytes())
        guard crypto_box_seal(&out, message, UInt64(message.count), publicKey) == 0 else { throw SealedBoxError("sealing failed") }
        return out
    }
}

public struct SealedBoxError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A one-time X25519 key pair for sealed boxes; the secret half lives in guarded memory.
public final class EphemeralKeyPair: @unchecked Sendable {
    public let publicKey: [UInt8]
    private let secretKey: SecureBytes

    public init() {
        Sodium.ensureInitialized()
        var pk = [UInt8](repeating: 0, count: SealedBox.publicKeySize)
        secretKey = SecureBytes(count: Int(crypto_box_SECRETKEYBYTES)) { sk in
            _ = crypto_box_keypair(&pk, sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        publicKey = pk
    }

    /// Opens a sealed box; nil when it was not sealed to this key, was altered, or is larger
    /// than `limit`.
    public func open(_ sealed: [UInt8], limit: Int = 64 << 10) -> [UInt8]? {
        guard sealed.count > crypto_box_sealbytes(), sealed.count < limit else { return nil }
        var out = [UInt8](repeating: 0, count: sealed.count - crypto_box_sealbytes())
        let ok = secretKey.withBytes { sk in
            crypto_box_seal_open(&out, sealed, UInt64(sealed.count), publicKey, sk.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
        }
        return ok ? out : nil
    }
}

import CSodium

/// Ed25519 signatures (libsodium): the simulated attester's and the key server's identity.
/// Secret keys are 32-byte seeds in guarded memory; the expanded key exists only during a call.
public enum Ed25519 {
    public static let publicKeySize = Int(crypto_sign_PUBLICKEYBYTES)
    public static let signatureSize = Int(crypto_sign_BYTES)

    /// A new secret key: a random 32-byte seed.
    public static func generateSeed() -> SecureBytes { SecureBytes.random(count: Int(crypto_sign_SEEDBYTES)) }

    public static func publicKey(seed: SecureBytes) -> [UInt8] { keyPair(seed).public }

    public static func sign(_ message: [UInt8], seed: SecureBytes) -> [UInt8] {
        let keys = keyPair(seed)
        var signature = [UInt8](repeating: 0, count: signatureSize)
        keys.secret.withBytes { sk in
            _ = crypto_sign_detached(&signature, nil, message, UInt64(message.count), sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return signature
    }

    public static func verify(_ signature: [UInt8], _ message: [UInt8], publicKey: [UInt8]) -> Bool {
        Sodium.ensureInitialized()
        guard signature.count == signatureSize, publicKey.count == publicKeySize else { return false }
        return crypto_sign_verify_detached(signature, message, UInt64(message.count), publicKey) == 0
    }

    private static func keyPair(_ seed: SecureBytes) -> (public: [UInt8], secret: SecureBytes) {
        Sodium.ensureInitialized()
        precondition(seed.count == Int(crypto_sign_SEEDBYTES))
        var pk = [UInt8](repeating: 0, count: publicKeySize)
        let sk = seed.withBytes { s in
            SecureBytes(count: Int(crypto_sign_SECRETKEYBYTES)) { out in
                _ = crypto_sign_seed_keypair(&pk, out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                             s.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        return (pk, sk)
    }
}

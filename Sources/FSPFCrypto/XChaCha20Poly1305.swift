import CSodium

/// XChaCha20-Poly1305 (libsodium's IETF construction) with a random 192-bit nonce, which is
/// safe to draw at random for any number of messages under one key: how the key server keeps
/// secrets at rest under its master key.
public enum XChaCha20Poly1305 {
    public static let keySize = Int(crypto_aead_xchacha20poly1305_ietf_KEYBYTES)
    static let nonceSize = Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    static let tagSize = Int(crypto_aead_xchacha20poly1305_ietf_ABYTES)

    /// nonce ‖ ciphertext ‖ tag.
    public static func seal(_ plaintext: UnsafeRawBufferPointer, ad: [UInt8], key: SecureBytes) -> [UInt8] {
        precondition(key.count == keySize)
        let nonce = Sodium.randomBytes(nonceSize)
        var sealed = [UInt8](repeating: 0, count: plaintext.count + tagSize)
        var length: UInt64 = 0
        key.withBytes { k in
            _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                &sealed, &length, plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
                ad, UInt64(ad.count), nil, nonce, k.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return nonce + sealed
    }

    /// The plaintext in guarded memory, or nil when `sealed` was altered, bound to other
    /// associated data, or sealed under another key.
    public static func open(_ sealed: [UInt8], ad: [UInt8], key: SecureBytes) -> SecureBytes? {
        precondition(key.count == keySize)
        guard sealed.count >= nonceSize + tagSize else { return nil }
        let nonce = Array(sealed[0..<nonceSize]), body = Array(sealed[nonceSize...])
        var ok = false
        let plain = SecureBytes(count: body.count - tagSize) { out in
            key.withBytes { k in
                var length: UInt64 = 0
                ok = crypto_aead_xchacha20poly1305_ietf_decrypt(
                    out.baseAddress?.assumingMemoryBound(to: UInt8.self), &length, nil, body, UInt64(body.count),
                    ad, UInt64(ad.count), nonce, k.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
            }
        }
        return ok ? plain : nil
    }
}

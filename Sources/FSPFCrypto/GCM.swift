import COpenSSL

/// One OpenSSL AES-256-GCM context. Not thread-safe: each thread owns one (see
/// `ChunkCipher`) and reuses it, re-initialising only the IV while the key stays the same —
/// re-keying per call halves throughput at small chunk sizes (SWIFT-C-INTEROP.md).
public final class GCMContext {
    public static let tagSize = 16
    public static let nonceSize = 12
    private let ctx: OpaquePointer
    private var keyed = false

    public init() {
        guard let c = EVP_CIPHER_CTX_new(),
              EVP_CipherInit_ex(c, EVP_aes_256_gcm(), nil, nil, nil, 1) == 1 else {
            fatalError("OpenSSL: AES-256-GCM unavailable")
        }
        ctx = c
    }

    deinit { EVP_CIPHER_CTX_free(ctx) }

    /// Installs a new 32-byte key; the next operation only sets the IV.
    public func setKey(_ key: UnsafeRawBufferPointer) {
        precondition(key.count == 32)
        // Direction is irrelevant to the GCM key schedule; it is set again per call with the IV.
        let ok = EVP_CipherInit_ex(ctx, nil, nil, key.baseAddress!.assumingMemoryBound(to: UInt8.self), nil, 1)
        precondition(ok == 1, "OpenSSL: setting the AES key failed")
        keyed = true
    }

    private func start(nonce: UnsafeRawBufferPointer, encrypt: Bool) {
        precondition(keyed && nonce.count == GCMContext.nonceSize)
        let ok = EVP_CipherInit_ex(ctx, nil, nil, nil, nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), encrypt ? 1 : 0)
        precondition(ok == 1, "OpenSSL: setting the GCM IV failed")
    }

    private func aad(_ bytes: UnsafeRawBufferPointer) {
        var outl: Int32 = 0
        var p = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        var left = bytes.count
        while left > 0 {
            let n = min(left, 1 << 30)
            precondition(EVP_CipherUpdate(ctx, nil, &outl, p, Int32(n)) == 1)
            p = p! + n
            left -= n
        }
    }

    private func crypt(_ data: UnsafeMutableRawBufferPointer) {
        guard data.count > 0 else { return }
        var outl: Int32 = 0
        let p = data.baseAddress!.assumingMemoryBound(to: UInt8.self)
        precondition(data.count <= Int(Int32.max))
        precondition(EVP_CipherUpdate(ctx, p, &outl, p, Int32(data.count)) == 1 && Int(outl) == data.count)
    }

    /// Encrypts `data` in place and writes the 16-byte tag.
    public func seal(nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer, data: UnsafeMutableRawBufferPointer,
              tag: UnsafeMutableRawBufferPointer) {
        start(nonce: nonce, encrypt: true)
        self.aad(aad)
        crypt(data)
        var outl: Int32 = 0
        var scratch: UInt8 = 0
        precondition(EVP_CipherFinal_ex(ctx, &scratch, &outl) == 1)
        precondition(fspf_gcm_get_tag(ctx, tag.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 1)
    }

    /// Decrypts `data` in place; false (and `data` scrubbed) if the tag does not match.
    public func open(nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer, data: UnsafeMutableRawBufferPointer,
              tag: UnsafeRawBufferPointer) -> Bool {
        start(nonce: nonce, encrypt: false)
        self.aad(aad)
        crypt(data)
        precondition(fspf_gcm_set_tag(ctx, tag.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 1)
        var outl: Int32 = 0
        var scratch: UInt8 = 0
        if EVP_CipherFinal_ex(ctx, &scratch, &outl) == 1 { return true }
        // Never let unauthenticated plaintext escape.
        Sodium.zero(data)
        return false
    }

    /// GMAC: a GCM tag over `aad` and `data` where `data` is authenticated, not encrypted.
    public func mac(nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer,
             tag: UnsafeMutableRawBufferPointer) {
        start(nonce: nonce, encrypt: true)
        self.aad(aad)
        self.aad(data)
        var outl: Int32 = 0
        var scratch: UInt8 = 0
        precondition(EVP_CipherFinal_ex(ctx, &scratch, &outl) == 1)
        precondition(fspf_gcm_get_tag(ctx, tag.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 1)
    }
}

import COpenSSL

/// SHA-256 through OpenSSL EVP (uses the SHA extensions where the CPU has them).
public struct SHA256: ~Copyable {
    public static let size = 32
    private let ctx: OpaquePointer

    public init() {
        guard let c = EVP_MD_CTX_new(), EVP_DigestInit_ex(c, EVP_sha256(), nil) == 1 else {
            fatalError("OpenSSL: SHA-256 unavailable")
        }
        ctx = c
    }

    deinit { EVP_MD_CTX_free(ctx) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        EVP_DigestUpdate(ctx, bytes.baseAddress, bytes.count)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func update<T: FixedWidthInteger>(littleEndian value: T) {
        withUnsafeBytes(of: value.littleEndian) { update($0) }
    }

    public consuming func finish() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: SHA256.size)
        var n: UInt32 = 0
        out.withUnsafeMutableBytes { _ = EVP_DigestFinal_ex(ctx, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), &n) }
        return out
    }

    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(bytes)
        return h.finish()
    }
}

/// A SHA-256 context kept for many one-shot digests, so that hashing a chunk allocates
/// nothing: one per thread on the hot paths (the reader's and the writer's chunks).
public final class SHA256Context {
    private let ctx: OpaquePointer

    public init() {
        guard let c = EVP_MD_CTX_new() else { fatalError("OpenSSL: SHA-256 unavailable") }
        ctx = c
    }

    deinit { EVP_MD_CTX_free(ctx) }

    /// SHA-256 of `data` into the 32 bytes of `out`.
    public func digest(_ data: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count == SHA256.size)
        var n: UInt32 = 0
        guard EVP_DigestInit_ex(ctx, EVP_sha256(), nil) == 1,
              data.isEmpty || EVP_DigestUpdate(ctx, data.baseAddress, data.count) == 1,
              EVP_DigestFinal_ex(ctx, out.baseAddress!.assumingMemoryBound(to: UInt8.self), &n) == 1 else {
            fatalError("OpenSSL: SHA-256 failed")
        }
    }
}

/// HMAC-SHA256 and HKDF-SHA256 (RFC 2104, RFC 5869) through OpenSSL 3's MAC and KDF APIs.
public enum KDF {
    /// HKDF-SHA256(ikm, salt, info) -> `out.count` bytes, through EVP_PKEY_HKDF.
    public static func hkdf(ikm: UnsafeRawBufferPointer, salt: [UInt8], info: [UInt8],
                     into out: UnsafeMutableRawBufferPointer) {
        guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nil) else { fatalError("OpenSSL: HKDF unavailable") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var outLen = out.count
        let ok = salt.withUnsafeBytes { s in
            info.withUnsafeBytes { i in
                EVP_PKEY_derive_init(ctx) == 1
                    && EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) == 1
                    && EVP_PKEY_CTX_set1_hkdf_salt(ctx, s.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(s.count)) == 1
                    && EVP_PKEY_CTX_set1_hkdf_key(ctx, ikm.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(ikm.count)) == 1
                    && EVP_PKEY_CTX_add1_hkdf_info(ctx, i.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(i.count)) == 1
                    && EVP_PKEY_derive(ctx, out.baseAddress!.assumingMemoryBound(to: UInt8.self), &outLen) == 1
            }
        }
        precondition(ok && outLen == out.count, "OpenSSL: HKDF derivation failed")
    }

    /// HMAC-SHA256(key, message).
    public static func hmac(key: UnsafeRawBufferPointer, _ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var outLen = 0
        let ok = message.withUnsafeBytes { m in
            out.withUnsafeMutableBytes { o in
                EVP_Q_mac(nil, "HMAC", nil, "SHA256", nil, key.baseAddress, key.count,
                          m.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) }, m.count,
                          o.baseAddress!.assumingMemoryBound(to: UInt8.self), o.count, &outLen)
            }
        }
        precondition(ok != nil && outLen == 32, "OpenSSL: HMAC failed")
        return out
    }
}

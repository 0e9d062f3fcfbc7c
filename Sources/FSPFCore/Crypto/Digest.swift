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

/// HMAC-SHA256 and HKDF-SHA256 (RFC 2104, RFC 5869) through OpenSSL 3's MAC and KDF APIs.
public enum KDF {
    nonisolated(unsafe) private static let hkdf: OpaquePointer = {
        guard let k = EVP_KDF_fetch(nil, "HKDF", nil) else { fatalError("OpenSSL: HKDF unavailable") }
        return k
    }()

    /// HKDF-SHA256(ikm, salt, info) -> `length` bytes written into `out`.
    static func hkdf(ikm: UnsafeRawBufferPointer, salt: [UInt8], info: [UInt8],
                     into out: UnsafeMutableRawBufferPointer) {
        guard let ctx = EVP_KDF_CTX_new(hkdf) else { fatalError("OpenSSL: EVP_KDF_CTX_new failed") }
        defer { EVP_KDF_CTX_free(ctx) }
        var salt = salt, info = info
        let ok = "SHA256".withCString { digest -> Int32 in
            salt.withUnsafeMutableBytes { s in
                info.withUnsafeMutableBytes { i in
                    var params: [OSSL_PARAM] = [
                        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, UnsafeMutablePointer(mutating: digest), 0),
                        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, UnsafeMutableRawPointer(mutating: ikm.baseAddress), ikm.count),
                        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, s.baseAddress, s.count),
                        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, i.baseAddress, i.count),
                        OSSL_PARAM_construct_end(),
                    ]
                    return EVP_KDF_derive(ctx, out.baseAddress!.assumingMemoryBound(to: UInt8.self), out.count, &params)
                }
            }
        }
        precondition(ok == 1, "OpenSSL: HKDF derivation failed")
    }

    /// HMAC-SHA256(key, message).
    static func hmac(key: UnsafeRawBufferPointer, _ message: [UInt8]) -> [UInt8] {
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

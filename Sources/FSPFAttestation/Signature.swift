import COpenSSL

/// The two signature schemes attestation evidence uses.
public enum Signature: Sendable {
    /// ECDSA P-256 with SHA-256, as r ‖ s (32 bytes each): SGX quotes, Intel's TCB info and QE identity.
    case ecdsaP256(rs: [UInt8])
    /// RSASSA-PKCS1-v1_5 with SHA-256 (JWT "RS256"): Azure Attestation tokens.
    case rsaSHA256([UInt8])
}

enum PublicKey {
    /// SubjectPublicKeyInfo header for an uncompressed P-256 point (id-ecPublicKey, prime256v1).
    private static let p256Prefix: [UInt8] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
    ]

    /// Verifies with a raw P-256 public key x ‖ y (the quote's attestation key). A point not on
    /// the curve is refused by OpenSSL while decoding.
    static func verifyP256(point: [UInt8], signature: Signature, over message: [UInt8]) -> Bool {
        guard point.count == 64 else { return false }
        let spki = p256Prefix + point
        let key: OpaquePointer? = spki.withUnsafeBufferPointer { buffer in
            var p: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_PUBKEY(nil, &p, buffer.count)
        }
        guard let key else { ERR_clear_error(); return false }
        defer { EVP_PKEY_free(key) }
        return verify(key, signature: signature, over: message)
    }

    static func verify(_ key: OpaquePointer, signature: Signature, over message: [UInt8]) -> Bool {
        defer { ERR_clear_error() }
        let der: [UInt8]
        switch signature {
        case .ecdsaP256(let rs):
            guard EVP_PKEY_get_base_id(key) == EVP_PKEY_EC, let converted = ecdsaDER(rs) else { return false }
            der = converted
        case .rsaSHA256(let bytes):
            guard EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA else { return false }
            der = bytes
        }
        guard let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestVerifyInit(ctx, nil, EVP_sha256(), nil, key) == 1 else { return false }
        return EVP_DigestVerify(ctx, der, der.count, message, message.count) == 1
    }

    /// r ‖ s → the DER ECDSA-Sig-Value OpenSSL verifies.
    private static func ecdsaDER(_ rs: [UInt8]) -> [UInt8]? {
        guard rs.count == 64, let sig = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(sig) }
        let r = BN_bin2bn(rs, 32, nil), s = rs.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress! + 32, 32, nil) }
        guard let r, let s, ECDSA_SIG_set0(sig, r, s) == 1 else { BN_free(r); BN_free(s); return nil }
        var out: UnsafeMutablePointer<UInt8>?
        let n = i2d_ECDSA_SIG(sig, &out)
        guard n > 0, let out else { return nil }
        defer { CRYPTO_free(out, #fileID, #line) }
        return Array(UnsafeBufferPointer(start: out, count: Int(n)))
    }
}

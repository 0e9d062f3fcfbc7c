import COpenSSL
import FSPFCrypto
import FSPFSystem
import FSPFProvisioning

/// A self-signed P-256 TLS certificate for the broker (`fspf keyserver init`). Clients trust it
/// by pinning the file (`--broker-ca`); it carries the names given (DNS or IP) as SANs.
enum SelfSigned {
    /// Writes the key and certificate as new files `keyName` and `certificateName` in `directory`.
    static func generate(names: [String], days: Int, in directory: Directory, keyName: String, certificateName: String) throws {
        func fail(_ what: String) -> FSPFError {
            .io(path: directory.shown(certificateName), operation: "\(what) (\(OpenSSLError.take()))", errno: EIO)
        }
        guard let kctx = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else { throw fail("key generation") }
        defer { EVP_PKEY_CTX_free(kctx) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(kctx) == 1, EVP_PKEY_CTX_set_group_name(kctx, "P-256") == 1,
              EVP_PKEY_generate(kctx, &key) == 1, let key else { throw fail("key generation") }
        defer { EVP_PKEY_free(key) }

        guard let x = X509_new() else { throw fail("certificate") }
        defer { X509_free(x) }
        var serial = Sodium.randomBytes(16)
        serial[0] &= 0x7f
        guard let bn = BN_bin2bn(serial, Int32(serial.count), nil) else { throw fail("serial") }
        defer { BN_free(bn) }
        let cn = names.first ?? "fspf-keyserver"
        guard X509_set_version(x, 2) == 1, BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != nil,
              X509_gmtime_adj(X509_getm_notBefore(x), -300) != nil,
              X509_gmtime_adj(X509_getm_notAfter(x), days * 86400) != nil,
              X509_set_pubkey(x, key) == 1, let name = X509_get_subject_name(x),
              X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, cn, -1, -1, 0) == 1,
              X509_set_issuer_name(x, name) == 1 else { throw fail("certificate fields") }
        let san = names.map { isIPAddress($0) ? "IP:\($0)" : "DNS:\($0)" }.joined(separator: ",")
        for (nid, value) in [(NID_subject_alt_name, san), (NID_basic_constraints, "critical,CA:FALSE"),
                             (NID_key_usage, "critical,digitalSignature"), (NID_ext_key_usage, "serverAuth")] {
            guard let ext = X509V3_EXT_conf_nid(nil, nil, nid, value) else { throw fail("extension \(value)") }
            defer { X509_EXTENSION_free(ext) }
            guard X509_add_ext(x, ext, -1) == 1 else { throw fail("extension \(value)") }
        }
        guard X509_sign(x, key, EVP_sha256()) > 0 else { throw fail("signing") }

        func pem(_ write: (OpaquePointer) -> Int32) throws -> [UInt8] {
            guard let bio = BIO_new(BIO_s_mem()) else { throw fail("PEM") }
            defer { BIO_free(bio) }
            guard write(bio) == 1 else { throw fail("PEM") }
            var out: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            defer { buffer.withUnsafeMutableBytes { Sodium.zero($0) } }
            while case let n = BIO_read(bio, &buffer, Int32(buffer.count)), n > 0 { out += buffer.prefix(Int(n)) }
            return out
        }
        var keyPEM = try pem { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) }
        defer { keyPEM.withUnsafeMutableBytes { Sodium.zero($0) } }
        try directory.writeAtomically(keyName, keyPEM, mode: 0o600, replacing: false)
        try directory.writeAtomically(certificateName, try pem { PEM_write_bio_X509($0, x) }, mode: 0o644, replacing: false)
    }
}

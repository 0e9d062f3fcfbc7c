import COpenSSL
import FSPFCrypto

/// An X.509 certificate owned by Swift (X509_free on release). Immutable after parsing.
public final class Certificate: @unchecked Sendable {
    let raw: OpaquePointer

    private init(_ raw: OpaquePointer) { self.raw = raw }
    deinit { X509_free(raw) }

    public convenience init(der: [UInt8]) throws {
        let parsed: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var p: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_X509(nil, &p, buffer.count)
        }
        guard let parsed else { throw AttestationError("not a DER certificate: \(OpenSSLError.take())") }
        self.init(parsed)
    }

    /// Every certificate of a PEM text, in order. Throws when there is none or one is damaged.
    public static func chain(pem: [UInt8]) throws -> [Certificate] {
        guard let bio = pem.withUnsafeBytes({ BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }) else {
            throw AttestationError("out of memory")
        }
        defer { BIO_free(bio) }
        var out: [Certificate] = []
        while let x = PEM_read_bio_X509(bio, nil, nil, nil) { out.append(Certificate(x)) }
        let code = ERR_peek_last_error()
        // The loop ends with "no start line" after the last certificate; anything else is damage.
        if ERR_GET_REASON(code) != PEM_R_NO_START_LINE || ERR_GET_LIB(code) != ERR_LIB_PEM, code != 0 {
            throw AttestationError("damaged PEM certificate: \(OpenSSLError.take())")
        }
        ERR_clear_error()
        guard !out.isEmpty else { throw AttestationError("no PEM certificate found") }
        return out
    }

    public var der: [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        let n = i2d_X509(raw, &out)
        guard n > 0, let out else { return [] }
        defer { CRYPTO_free(out, #fileID, #line) }
        return Array(UnsafeBufferPointer(start: out, count: Int(n)))
    }

    /// Canonical PEM (64-column base64), to detect any byte of a PEM text that parsing ignored.
    public var pem: [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else { return [] }
        defer { BIO_free(bio) }
        guard PEM_write_bio_X509(bio, raw) == 1 else { return [] }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = BIO_read(bio, &buffer, Int32(buffer.count))
            guard n > 0 else { break }
            out += buffer.prefix(Int(n))
        }
        return out
    }

    public var subject: String { Self.name(X509_get_subject_name(raw)) }
    public var issuer: String { Self.name(X509_get_issuer_name(raw)) }

    public var serial: String {
        guard let bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(raw), nil) else { return "" }
        defer { BN_free(bn) }
        guard let hex = BN_bn2hex(bn) else { return "" }
        defer { CRYPTO_free(hex, #fileID, #line) }
        return String(cString: hex)
    }

    /// notBefore and notAfter as Unix seconds.
    public var validity: (notBefore: Int64, notAfter: Int64) {
        (Self.seconds(X509_get0_notBefore(raw)), Self.seconds(X509_get0_notAfter(raw)))
    }

    /// The DER content of the extension with `oid`, if present.
    func extensionValue(oid: String) -> [UInt8]? {
        guard let object = OBJ_txt2obj(oid, 1) else { return nil }
        defer { ASN1_OBJECT_free(object) }
        let index = X509_get_ext_by_OBJ(raw, object, -1)
        guard index >= 0, let ext = X509_get_ext(raw, index), let data = X509_EXTENSION_get_data(ext) else { return nil }
        let length = Int(ASN1_STRING_length(data))
        guard let bytes = ASN1_STRING_get0_data(data) else { return nil }
        return Array(UnsafeBufferPointer(start: bytes, count: length))
    }

    /// Verifies a raw signature over `message` with this certificate's public key.
    func verify(signature: Signature, over message: [UInt8]) -> Bool {
        guard let key = X509_get0_pubkey(raw) else { return false }
        return PublicKey.verify(key, signature: signature, over: message)
    }

    /// A distinguished name as text, most specific first ("CN=…, O=…").
    static func name(_ name: OpaquePointer?) -> String {
        guard let name, let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        X509_NAME_print_ex(bio, name, 0, fspf_name_print_flags())
        var text = [UInt8](repeating: 0, count: 1024)
        let n = BIO_read(bio, &text, Int32(text.count))
        return n > 0 ? String(decoding: text.prefix(Int(n)), as: UTF8.self) : ""
    }

    private static func seconds(_ time: UnsafePointer<ASN1_TIME>?) -> Int64 {
        var tm = tm()
        guard let time, ASN1_TIME_to_tm(time, &tm) == 1 else { return 0 }
        return Int64(timegm(&tm))
    }
}

/// A certificate revocation list (DER, as Intel's PCS serves them).
public final class RevocationList: @unchecked Sendable {
    let raw: OpaquePointer

    public init(der: [UInt8]) throws {
        let parsed: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var p: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_X509_CRL(nil, &p, buffer.count)
        }
        guard let parsed else { throw AttestationError("not a DER CRL: \(OpenSSLError.take())") }
        raw = parsed
    }
    deinit { X509_CRL_free(raw) }

    public var issuer: String { Certificate.name(X509_CRL_get_issuer(raw)) }
}

/// Chain validation with OpenSSL's verifier at a fixed time: only `root` is trusted (no system
/// store, no partial chains), and with CRLs every certificate below the root must be covered
/// by its issuer's CRL (CRL_CHECK_ALL), so a missing or expired CRL is a failure, not a pass.
public enum ChainValidation {
    public static func verify(leaf: Certificate, intermediates: [Certificate], root: Certificate,
                              crls: [RevocationList], at time: Int64) -> Result<Void, AttestationError> {
        guard let store = X509_STORE_new() else { return .failure(AttestationError("out of memory")) }
        defer { X509_STORE_free(store) }
        guard X509_STORE_add_cert(store, root.raw) == 1 else {
            return .failure(AttestationError("cannot use the trusted root: \(OpenSSLError.take())"))
        }
        for crl in crls where X509_STORE_add_crl(store, crl.raw) != 1 {
            return .failure(AttestationError("cannot use a CRL: \(OpenSSLError.take())"))
        }
        guard let untrusted = fspf_x509_stack_new() else { return .failure(AttestationError("out of memory")) }
        defer { fspf_x509_stack_free(untrusted) }
        for c in intermediates { _ = fspf_x509_stack_push(untrusted, c.raw) }
        guard let ctx = X509_STORE_CTX_new() else { return .failure(AttestationError("out of memory")) }
        defer { X509_STORE_CTX_free(ctx) }
        guard X509_STORE_CTX_init(ctx, store, leaf.raw, untrusted) == 1 else {
            return .failure(AttestationError("cannot start chain verification: \(OpenSSLError.take())"))
        }
        var flags = UInt(X509_V_FLAG_X509_STRICT)
        if !crls.isEmpty { flags |= UInt(X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL) }
        X509_STORE_CTX_set_flags(ctx, flags)
        X509_STORE_CTX_set_time(ctx, 0, time_t(time))
        if X509_verify_cert(ctx) == 1 { ERR_clear_error(); return .success(()) }
        let code = X509_STORE_CTX_get_error(ctx)
        let depth = X509_STORE_CTX_get_error_depth(ctx)
        var subject = "certificate at depth \(depth)"
        if let bad = X509_STORE_CTX_get_current_cert(ctx) {
            X509_up_ref(bad)
            subject = Certificate.wrapping(bad).subject
        }
        ERR_clear_error()
        return .failure(AttestationError("\(subject): \(String(cString: X509_verify_cert_error_string(Int(code))))"))
    }
}

extension Certificate {
    /// Takes ownership of one reference.
    static func wrapping(_ raw: OpaquePointer) -> Certificate { Certificate(raw) }
}

import FSPFCrypto
import FSPFSystem

/// An SGX enclave report body (384 bytes), as it appears twice in a quote: the application
/// enclave's and the Quoting Enclave's.
public struct ReportBody: Sendable, Equatable {
    public static let size = 384
    public let bytes: [UInt8]

    init(_ bytes: ArraySlice<UInt8>) { self.bytes = Array(bytes) }

    public var cpuSVN: [UInt8] { Array(bytes[0..<16]) }
    public var miscSelect: UInt32 { le32(bytes, 16) }
    public var attributes: [UInt8] { Array(bytes[48..<64]) }
    public var mrEnclave: [UInt8] { Array(bytes[64..<96]) }
    public var mrSigner: [UInt8] { Array(bytes[128..<160]) }
    public var isvProdID: UInt16 { le16(bytes, 256) }
    public var isvSVN: UInt16 { le16(bytes, 258) }
    public var reportData: [UInt8] { Array(bytes[320..<384]) }

    /// Attribute flags (SDM: SECS.ATTRIBUTES): bit 1 is DEBUG.
    public var flags: UInt64 { le64(bytes, 48) }
    public var xfrm: UInt64 { le64(bytes, 56) }
    public var isDebug: Bool { flags & 0x2 != 0 }
}

/// An Intel SGX DCAP ECDSA quote, version 3 (Intel SGX ECDSA Quote Library reference, "Quote
/// Format"). Every length is checked; the parse keeps the exact signed bytes.
public struct SGXQuote: Sendable {
    public static let headerSize = 48
    public let bytes: [UInt8]

    public let version: UInt16
    public let attestationKeyType: UInt16
    public let qeSVN: UInt16
    public let pceSVN: UInt16
    public let qeVendorID: [UInt8]
    public let userData: [UInt8]
    public let report: ReportBody

    public let reportSignature: [UInt8]   // r ‖ s over header ‖ report body
    public let attestationKey: [UInt8]    // x ‖ y of the P-256 key the QE generated
    public let qeReport: ReportBody
    public let qeReportSignature: [UInt8] // r ‖ s by the PCK key over the QE report body
    public let qeAuthData: [UInt8]
    public let certificationDataType: UInt16
    public let certificationData: [UInt8]

    /// Header and application report body: what the attestation key signed.
    public var signedPart: ArraySlice<UInt8> { bytes[0..<Self.headerSize + ReportBody.size] }

    public init(_ data: [UInt8]) throws {
        bytes = data
        var r = Reader(data)
        version = try r.u16("version")
        guard version == 3 else { throw AttestationError("quote version \(version) is not supported (expected 3)") }
        attestationKeyType = try r.u16("attestation key type")
        guard attestationKeyType == 2 else {
            throw AttestationError("attestation key type \(attestationKeyType) is not ECDSA-256-with-P-256 (2)")
        }
        let teeType = try r.u32("reserved")
        guard teeType == 0 else { throw AttestationError("quote is not for SGX (TEE type \(teeType))") }
        qeSVN = try r.u16("QE SVN")
        pceSVN = try r.u16("PCE SVN")
        qeVendorID = try r.take(16, "QE vendor id")
        userData = try r.take(20, "user data")
        report = ReportBody(try r.slice(ReportBody.size, "report body"))
        let signatureLength = Int(try r.u32("signature data length"))
        guard signatureLength == r.remaining else {
            throw AttestationError("signature data length \(signatureLength) does not match the \(r.remaining) bytes that follow")
        }
        reportSignature = try r.take(64, "report signature")
        attestationKey = try r.take(64, "attestation key")
        qeReport = ReportBody(try r.slice(ReportBody.size, "QE report"))
        qeReportSignature = try r.take(64, "QE report signature")
        qeAuthData = try r.take(Int(try r.u16("QE authentication data size")), "QE authentication data")
        certificationDataType = try r.u16("certification data type")
        certificationData = try r.take(Int(try r.u32("certification data size")), "certification data")
        guard r.remaining == 0 else { throw AttestationError("\(r.remaining) unexpected bytes after the certification data") }
    }

    /// The PCK chain carried in certification data type 5 (PEM: leaf, intermediate CA, root).
    /// Strict: the data must be exactly the canonical PEM of its certificates (with the C string
    /// terminator Intel's library appends), so no byte of the quote goes unchecked.
    public func pckChain() throws -> [Certificate] {
        guard certificationDataType == 5 else {
            throw AttestationError("certification data type \(certificationDataType) carries no PCK certificate chain (expected 5)")
        }
        let chain = try Certificate.chain(pem: certificationData)
        let canonical = chain.flatMap(\.pem)
        guard certificationData == canonical || certificationData == canonical + [0] else {
            throw AttestationError("certification data is not exactly a PEM certificate chain")
        }
        return chain
    }

    private struct Reader {
        let data: [UInt8]
        var offset = 0
        init(_ data: [UInt8]) { self.data = data }
        var remaining: Int { data.count - offset }

        mutating func slice(_ n: Int, _ what: String) throws -> ArraySlice<UInt8> {
            guard n >= 0, remaining >= n else {
                throw AttestationError("quote truncated in the \(what) (needs \(n) bytes at offset \(offset), \(remaining) left)")
            }
            defer { offset += n }
            return data[offset..<offset + n]
        }
        mutating func take(_ n: Int, _ what: String) throws -> [UInt8] { Array(try slice(n, what)) }
        mutating func u16(_ what: String) throws -> UInt16 { UInt16(truncatingIfNeeded: le(try slice(2, what))) }
        mutating func u32(_ what: String) throws -> UInt32 { UInt32(truncatingIfNeeded: le(try slice(4, what))) }
    }
}

/// What Intel puts in a PCK certificate's SGX extension (OID 1.2.840.113741.1.13.1).
public struct PCKExtensions: Sendable, Equatable {
    public let fmspc: [UInt8]
    public let pceID: [UInt8]
    public let cpuSVNComponents: [UInt8] // SGX TCB component SVNs 1…16
    public let pceSVN: Int

    static let root = "1.2.840.113741.1.13.1"

    public init(_ certificate: Certificate) throws {
        guard let value = certificate.extensionValue(oid: Self.root) else {
            throw AttestationError("the PCK certificate has no SGX extension")
        }
        guard let outer = try DER.elements(value[...]).first, outer.tag == DER.sequence else {
            throw AttestationError("SGX extension: not a sequence")
        }
        var fmspc: [UInt8]?, pceID: [UInt8]?, components = [UInt8](repeating: 0, count: 16), pceSVN: Int?
        var seen = Set<Int>()
        for entry in try DER.elements(outer.content) {
            let parts = try DER.elements(entry.content)
            guard entry.tag == DER.sequence, parts.count == 2, parts[0].tag == DER.oid else {
                throw AttestationError("SGX extension: malformed entry")
            }
            let oid = Array(parts[0].content)
            if oid == DER.oid(Self.root + ".4"), parts[1].tag == DER.octetString, parts[1].content.count == 6 {
                fmspc = Array(parts[1].content)
            } else if oid == DER.oid(Self.root + ".3"), parts[1].tag == DER.octetString, parts[1].content.count == 2 {
                pceID = Array(parts[1].content)
            } else if oid == DER.oid(Self.root + ".2"), parts[1].tag == DER.sequence {
                for tcb in try DER.elements(parts[1].content) {
                    let item = try DER.elements(tcb.content)
                    guard item.count == 2, item[0].tag == DER.oid else { throw AttestationError("SGX extension: malformed TCB entry") }
                    let id = Array(item[0].content)
                    for n in 1...16 where id == DER.oid(Self.root + ".2.\(n)") {
                        guard item[1].tag == DER.integer else { throw AttestationError("SGX extension: TCB component \(n) is not an integer") }
                        let svn = try DER.unsigned(item[1].content)
                        guard svn <= 255 else { throw AttestationError("SGX extension: TCB component \(n) out of range") }
                        components[n - 1] = UInt8(svn)
                        seen.insert(n)
                    }
                    if id == DER.oid(Self.root + ".2.17"), item[1].tag == DER.integer {
                        pceSVN = try DER.unsigned(item[1].content)
                    }
                }
            }
        }
        guard let fmspc, let pceID, let pceSVN, seen.count == 16 else {
            throw AttestationError("SGX extension: FMSPC, PCE-ID, PCESVN or a TCB component is missing")
        }
        self.fmspc = fmspc
        self.pceID = pceID
        self.cpuSVNComponents = components
        self.pceSVN = pceSVN
    }
}

func le<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
    bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) }
}
func le16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(truncatingIfNeeded: le(b[at..<at + 2])) }
func le32(_ b: [UInt8], _ at: Int) -> UInt32 { UInt32(truncatingIfNeeded: le(b[at..<at + 4])) }
func le64(_ b: [UInt8], _ at: Int) -> UInt64 { le(b[at..<at + 8]) }

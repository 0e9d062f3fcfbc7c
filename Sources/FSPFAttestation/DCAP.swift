import Foundation
import FSPFCrypto
import FSPFSystem

/// Collateral for one quote, as Intel's PCS / a PCCS serves it (the field names of the
/// `QuoteCollateralV3` layout): CRLs as hex DER or PEM, chains as PEM, TCB info and QE identity
/// as the exact signed JSON text with hex signatures.
public struct Collateral: Sendable {
    public let pckCRLIssuerChain: [Certificate]
    public let rootCACRL: RevocationList
    public let pckCRL: RevocationList
    public let tcbInfoIssuerChain: [Certificate]
    public let tcbInfo: [UInt8]
    public let tcbInfoSignature: [UInt8]
    public let qeIdentityIssuerChain: [Certificate]
    public let qeIdentity: [UInt8]
    public let qeIdentitySignature: [UInt8]

    public init(json: [UInt8]) throws {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any] else {
            throw AttestationError("collateral is not a JSON object")
        }
        func text(_ key: String) throws -> String {
            guard let value = object[key] as? String, !value.isEmpty else { throw AttestationError("collateral: \(key) is missing") }
            return value
        }
        func crl(_ key: String) throws -> RevocationList {
            let value = try text(key)
            if value.hasPrefix("-----BEGIN") {
                let lines = value.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
                guard let der = Data(base64Encoded: lines) else { throw AttestationError("collateral: \(key) is damaged PEM") }
                return try RevocationList(der: [UInt8](der))
            }
            guard let der = Hex.decode(value) else { throw AttestationError("collateral: \(key) is neither hex DER nor PEM") }
            do { return try RevocationList(der: der) } catch { throw AttestationError("collateral: \(key): \(error)") }
        }
        func signature(_ key: String) throws -> [UInt8] {
            guard let bytes = Hex.decode(try text(key)), bytes.count == 64 else {
                throw AttestationError("collateral: \(key) is not a 64-byte hex ECDSA signature")
            }
            return bytes
        }
        func chain(_ key: String) throws -> [Certificate] {
            do { return try Certificate.chain(pem: Array(try text(key).utf8)) } catch { throw AttestationError("collateral: \(key): \(error)") }
        }
        pckCRLIssuerChain = try chain("pck_crl_issuer_chain")
        rootCACRL = try crl("root_ca_crl")
        pckCRL = try crl("pck_crl")
        tcbInfoIssuerChain = try chain("tcb_info_issuer_chain")
        tcbInfo = Array(try text("tcb_info").utf8)
        tcbInfoSignature = try signature("tcb_info_signature")
        qeIdentityIssuerChain = try chain("qe_identity_issuer_chain")
        qeIdentity = Array(try text("qe_identity").utf8)
        qeIdentitySignature = try signature("qe_identity_signature")
    }
}

/// The outcome of verifying one quote: every check in order, the TCB status and advisories.
public struct DCAPReport: Sendable {
    public let quote: SGXQuote
    public let checks: [Check]
    /// Intel's status string ("UpToDate", "SWHardeningNeeded", "ConfigurationAndSWHardeningNeeded",
    /// "OutOfDate", …, "Revoked"), combining the platform's and the QE's; nil when not determined.
    public let tcbStatus: String?
    public let advisoryIDs: [String]
    public let fmspc: [UInt8]?
    /// The lower of the TCB info's and QE identity's TCB evaluation data numbers.
    public var tcbEvaluationDataNumber: Int? = nil
    /// Seconds from the older of their issue dates to the verification time.
    public var collateralAge: Int64? = nil
    public var verified: Bool { checks.allPassed }
}

/// ECDSA quote verification as Intel's Quote Verification Library specifies it, offline: the
/// caller supplies collateral and the time, so the same inputs always give the same answer.
public enum DCAPVerifier {
    /// Intel SGX Root CA (self-signed P-256, valid 2018-05-21 … 2049-12-31), SHA-256 fingerprint
    /// 44:A0:19:6B:2B:99:F8:89:B8:E1:49:E9:5B:80:7A:35:0E:74:24:96:43:99:E8:85:A7:CB:B8:CC:FA:B6:74:D3.
    /// Pinned: a chain is only trusted when it ends here.
    public static let intelRootPEM = """
        -----BEGIN CERTIFICATE-----
        MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw
        aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv
        cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ
        BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG
        A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0
        aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT
        AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7
        1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB
        uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ
        MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50
        ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV
        Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI
        KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg
        AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=
        -----END CERTIFICATE-----
        """

    public static func intelRoot() -> Certificate {
        // The constant above is checked by a test; failing here would be a build defect.
        try! Certificate.chain(pem: Array(intelRootPEM.utf8))[0]
    }

    /// Intel's QE vendor id, 939A7233-F79C-4CA9-940A-0DB3957F0607.
    static let intelQEVendorID: [UInt8] = Hex.decode("939a7233f79c4ca9940a0db3957f0607")!

    public static func verify(quote: SGXQuote, collateral: Collateral, root: Certificate = intelRoot(),
                              at time: Int64) -> DCAPReport {
        var checks: [Check] = []
        func record(_ name: String, _ body: () throws -> String) {
            do { checks.append(Check(name, true, try body())) } catch {
                checks.append(Check(name, false, "\(error)"))
            }
        }
        func chainOK(_ chain: [Certificate], crls: [RevocationList]) throws {
            guard let leaf = chain.first else { throw AttestationError("empty certificate chain") }
            if case .failure(let e) = ChainValidation.verify(leaf: leaf, intermediates: Array(chain.dropFirst()),
                                                             root: root, crls: crls, at: time) { throw e }
        }

        record("quote header") {
            guard quote.qeVendorID == intelQEVendorID else { throw AttestationError("QE vendor \(Hex.encode(quote.qeVendorID)) is not Intel's") }
            return "version 3, ECDSA P-256 attestation key, Intel QE (QE SVN \(quote.qeSVN), PCE SVN \(quote.pceSVN))"
        }

        var pck: Certificate?
        var extensions: PCKExtensions?
        record("PCK certificate chain") {
            let chain = try quote.pckChain()
            guard chain.count == 3, chain[2].der == root.der else {
                throw AttestationError("the quote's chain is not PCK ← CA ← the pinned root (\(chain.last?.subject ?? "none"))")
            }
            try chainOK(chain, crls: [collateral.pckCRL, collateral.rootCACRL])
            pck = chain[0]
            extensions = try PCKExtensions(chain[0])
            return chain.map { String($0.subject.split(separator: ",")[0]) }.joined(separator: " ← ") + " (CRLs checked)"
        }
        record("QE report signature") {
            guard let pck else { throw AttestationError("no trusted PCK key") }
            guard pck.verify(signature: .ecdsaP256(rs: quote.qeReportSignature), over: quote.qeReport.bytes) else {
                throw AttestationError("the QE report is not signed by the PCK key")
            }
            return "signed by the PCK certificate's key"
        }
        record("QE report data binds the attestation key") {
            let expected = SHA256.hash(quote.attestationKey + quote.qeAuthData) + [UInt8](repeating: 0, count: 32)
            guard quote.qeReport.reportData == expected else {
                throw AttestationError("QE report data is not SHA-256(attestation key ‖ QE authentication data) ‖ zeros")
            }
            return "SHA-256(attestation key ‖ QE authentication data)"
        }
        record("quote signature") {
            guard PublicKey.verifyP256(point: quote.attestationKey, signature: .ecdsaP256(rs: quote.reportSignature),
                                       over: Array(quote.signedPart)) else {
                throw AttestationError("header and report body are not signed by the attestation key")
            }
            return "header and enclave report signed by the attestation key"
        }

        var platform: (status: String, advisories: [String])?
        var evaluationNumbers: [Int] = [], issued: [Int64] = []
        record("TCB info") {
            try chainOK(collateral.tcbInfoIssuerChain, crls: [collateral.rootCACRL])
            guard collateral.tcbInfoIssuerChain[0].verify(signature: .ecdsaP256(rs: collateral.tcbInfoSignature),
                                                          over: collateral.tcbInfo) else {
                throw AttestationError("TCB info signature does not verify")
            }
            let info = try TCBInfo(collateral.tcbInfo)
            try inWindow(info.issueDate, info.nextUpdate, time, "TCB info")
            if let n = info.evaluationDataNumber { evaluationNumbers.append(n) }
            issued.append(info.issueDate)
            guard let extensions else { throw AttestationError("no trusted PCK certificate to match") }
            guard info.fmspc == extensions.fmspc else {
                throw AttestationError("TCB info is for FMSPC \(Hex.encode(info.fmspc)), the PCK certificate's is \(Hex.encode(extensions.fmspc))")
            }
            guard info.pceID == extensions.pceID else { throw AttestationError("TCB info PCE-ID does not match the PCK certificate") }
            guard let level = info.levels.first(where: { $0.matches(extensions) }) else {
                throw AttestationError("the platform's TCB is below every level of the TCB info")
            }
            platform = (level.status, level.advisoryIDs)
            return "signed by \(collateral.tcbInfoIssuerChain[0].subject); FMSPC \(Hex.encode(info.fmspc).uppercased()); platform level \(level.status)"
        }

        var qe: (status: String, advisories: [String])?
        record("QE identity") {
            try chainOK(collateral.qeIdentityIssuerChain, crls: [collateral.rootCACRL])
            guard collateral.qeIdentityIssuerChain[0].verify(signature: .ecdsaP256(rs: collateral.qeIdentitySignature),
                                                             over: collateral.qeIdentity) else {
                throw AttestationError("QE identity signature does not verify")
            }
            let identity = try QEIdentity(collateral.qeIdentity)
            try inWindow(identity.issueDate, identity.nextUpdate, time, "QE identity")
            if let n = identity.object["tcbEvaluationDataNumber"] as? Int { evaluationNumbers.append(n) }
            issued.append(identity.issueDate)
            let level = try identity.evaluate(quote.qeReport)
            qe = (level.status, level.advisoryIDs)
            return "QE matches Intel's identity; QE level \(level.status)"
        }

        var status: String?
        var advisories: [String] = []
        record("TCB status") {
            guard let platform, let qe else { throw AttestationError("not determined") }
            let combined = combine(platform: platform.status, qe: qe.status)
            status = combined
            for id in platform.advisories + qe.advisories where !advisories.contains(id) { advisories.append(id) }
            guard combined != "Revoked" else { throw AttestationError("the platform or QE TCB is revoked") }
            return combined + (advisories.isEmpty ? "" : " (" + advisories.joined(separator: ", ") + ")")
        }
        return DCAPReport(quote: quote, checks: checks, tcbStatus: status, advisoryIDs: advisories, fmspc: extensions?.fmspc,
                          tcbEvaluationDataNumber: evaluationNumbers.min(), collateralAge: issued.min().map { time - $0 })
    }

    static func inWindow(_ issue: Int64, _ next: Int64, _ time: Int64, _ what: String) throws {
        guard time >= issue else { throw AttestationError("\(what) is issued \(UTCTime.format(issue)), after the verification time") }
        guard time <= next else { throw AttestationError("\(what) expired: next update was due \(UTCTime.format(next))") }
    }

    /// The QE's status lowers the platform's (Intel QVL's convergence rule).
    static func combine(platform: String, qe: String) -> String {
        if platform == "Revoked" || qe == "Revoked" { return "Revoked" }
        guard qe == "OutOfDate" else { return platform }
        switch platform {
        case "UpToDate", "SWHardeningNeeded", "OutOfDate": return "OutOfDate"
        default: return "OutOfDateConfigurationNeeded"
        }
    }
}

struct TCBLevel {
    let components: [UInt8]
    let pceSVN: Int
    let status: String
    let advisoryIDs: [String]

    func matches(_ e: PCKExtensions) -> Bool {
        zip(e.cpuSVNComponents, components).allSatisfy { $0 >= $1 } && e.pceSVN >= pceSVN
    }
}

private func decodeObject(_ bytes: [UInt8], _ what: String) throws -> [String: Any] {
    guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
        throw AttestationError("\(what) is not a JSON object")
    }
    return object
}

private func date(_ object: [String: Any], _ key: String, _ what: String) throws -> Int64 {
    guard let text = object[key] as? String, let t = UTCTime.parse(text) else { throw AttestationError("\(what): \(key) missing or invalid") }
    return t
}

@_spi(Fuzzing) public struct TCBInfo {
    let fmspc: [UInt8]
    let pceID: [UInt8]
    let issueDate: Int64
    let nextUpdate: Int64
    let evaluationDataNumber: Int?
    let levels: [TCBLevel]

    @_spi(Fuzzing) public init(_ bytes: [UInt8]) throws {
        let o = try decodeObject(bytes, "TCB info")
        let version = o["version"] as? Int ?? 0
        guard version == 2 || version == 3 else { throw AttestationError("TCB info version \(version) is not supported") }
        if version == 3, (o["id"] as? String) != "SGX" { throw AttestationError("TCB info is not for SGX") }
        guard let f = (o["fmspc"] as? String).flatMap(Hex.decode), f.count == 6,
              let p = (o["pceId"] as? String).flatMap(Hex.decode), p.count == 2,
              let rawLevels = o["tcbLevels"] as? [[String: Any]], !rawLevels.isEmpty else {
            throw AttestationError("TCB info: fmspc, pceId or tcbLevels missing")
        }
        fmspc = f
        pceID = p
        issueDate = try date(o, "issueDate", "TCB info")
        nextUpdate = try date(o, "nextUpdate", "TCB info")
        evaluationDataNumber = o["tcbEvaluationDataNumber"] as? Int
        levels = try rawLevels.map { level in
            guard let tcb = level["tcb"] as? [String: Any], let status = level["tcbStatus"] as? String,
                  let pce = tcb["pcesvn"] as? Int else { throw AttestationError("TCB info: malformed TCB level") }
            var svns: [Int] = []
            if let list = tcb["sgxtcbcomponents"] as? [[String: Any]] {
                svns = list.compactMap { $0["svn"] as? Int }
            } else {
                svns = (1...16).compactMap { tcb[String(format: "sgxtcbcomp%02dsvn", $0)] as? Int }
            }
            guard svns.count == 16, svns.allSatisfy({ (0...255).contains($0) }) else {
                throw AttestationError("TCB info: a level does not have 16 SGX TCB components")
            }
            return TCBLevel(components: svns.map(UInt8.init), pceSVN: pce, status: status,
                            advisoryIDs: level["advisoryIDs"] as? [String] ?? [])
        }
    }
}

@_spi(Fuzzing) public struct QEIdentity {
    let issueDate: Int64
    let nextUpdate: Int64
    let object: [String: Any]

    @_spi(Fuzzing) public init(_ bytes: [UInt8]) throws {
        object = try decodeObject(bytes, "QE identity")
        guard (object["id"] as? String ?? "QE") == "QE", (object["version"] as? Int) == 2 else {
            throw AttestationError("QE identity: not a version 2 QE identity")
        }
        issueDate = try date(object, "issueDate", "QE identity")
        nextUpdate = try date(object, "nextUpdate", "QE identity")
    }

    func evaluate(_ report: ReportBody) throws -> (status: String, advisoryIDs: [String]) {
        func hex(_ key: String, _ count: Int) throws -> [UInt8] {
            guard let v = (object[key] as? String).flatMap(Hex.decode), v.count == count else {
                throw AttestationError("QE identity: \(key) missing or invalid")
            }
            return v
        }
        let misc = try hex("miscselect", 4), miscMask = try hex("miscselectMask", 4)
        let attributes = try hex("attributes", 16), attributesMask = try hex("attributesMask", 16)
        let reportMisc = withUnsafeBytes(of: report.miscSelect.littleEndian, Array.init)
        guard zip(reportMisc, miscMask).map({ $0 & $1 }) == zip(misc, miscMask).map({ $0 & $1 }) else {
            throw AttestationError("QE MISCSELECT does not match Intel's QE identity")
        }
        guard zip(report.attributes, attributesMask).map({ $0 & $1 }) == zip(attributes, attributesMask).map({ $0 & $1 }) else {
            throw AttestationError("QE attributes do not match Intel's QE identity")
        }
        guard report.mrSigner == (try hex("mrsigner", 32)) else { throw AttestationError("QE MRSIGNER is not Intel's") }
        guard let product = object["isvprodid"] as? Int, Int(report.isvProdID) == product else {
            throw AttestationError("QE product id \(report.isvProdID) does not match Intel's QE identity")
        }
        guard let levels = object["tcbLevels"] as? [[String: Any]] else { throw AttestationError("QE identity: tcbLevels missing") }
        for level in levels {
            guard let svn = (level["tcb"] as? [String: Any])?["isvsvn"] as? Int, let status = level["tcbStatus"] as? String else {
                throw AttestationError("QE identity: malformed TCB level")
            }
            if Int(report.isvSVN) >= svn { return (status, level["advisoryIDs"] as? [String] ?? []) }
        }
        throw AttestationError("QE SVN \(report.isvSVN) is below every level of Intel's QE identity")
    }
}

import Foundation
import Testing
import FSPFCrypto
import FSPFSystem
@testable import FSPFAttestation

@Suite struct DCAPTests {
    let quoteBytes: [UInt8]
    let collateral: Collateral

    init() throws {
        quoteBytes = try fixture("sgx-quote-v3.bin")
        collateral = try Collateral(json: try fixture("sgx-quote-v3.collateral.json"))
    }

    @Test func parsesEveryField() throws {
        let q = try SGXQuote(quoteBytes)
        #expect(q.version == 3 && q.attestationKeyType == 2 && q.qeSVN == 10 && q.pceSVN == 15)
        #expect(Hex.encode(q.report.mrEnclave) == "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb")
        #expect(Hex.encode(q.report.mrSigner) == "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6")
        #expect(!q.report.isDebug && q.report.isvProdID == 0 && q.report.isvSVN == 0)
        #expect(q.report.reportData == Array("Hello, world!".utf8) + [UInt8](repeating: 0, count: 51))
        #expect(q.qeAuthData.count == 32 && q.certificationDataType == 5)
        let chain = try q.pckChain()
        #expect(chain.map(\.subject).map { $0.hasPrefix("CN=Intel SGX ") } == [true, true, true])
        let ext = try PCKExtensions(chain[0])
        #expect(Hex.encode(ext.fmspc) == "00a067110000" && ext.pceID == [0, 0])
    }

    @Test func pinnedRootIsIntels() throws {
        let root = DCAPVerifier.intelRoot()
        #expect(Hex.encode(SHA256.hash(root.der)) == "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3")
        #expect(root.subject == root.issuer)
    }

    @Test func realQuoteVerifiesWithItsCollateral() throws {
        let report = DCAPVerifier.verify(quote: try SGXQuote(quoteBytes), collateral: collateral, at: collateralTime)
        for c in report.checks { #expect(c.passed, "\(c.name): \(c.detail)") }
        #expect(report.checks.count == 8)
        #expect(report.tcbStatus == "ConfigurationAndSWHardeningNeeded")
        #expect(Set(report.advisoryIDs) == ["INTEL-SA-00289", "INTEL-SA-00615"])
        #expect(report.fmspc.map { Hex.encode($0) } == "00a067110000")
    }

    /// Every bit flip at every offset is either unreadable or fails at least one check.
    @Test func everyChangedByteIsRejected() throws {
        var accepted: [Int] = []
        for offset in quoteBytes.indices {
            var mutated = quoteBytes
            mutated[offset] ^= offset % 2 == 0 ? 0x01 : 0x80
            guard let q = try? SGXQuote(mutated) else { continue }
            let report = DCAPVerifier.verify(quote: q, collateral: collateral, at: collateralTime)
            if report.verified { accepted.append(offset) }
            #expect(report.checks.firstFailure.map { !$0.detail.isEmpty } ?? true)
        }
        #expect(accepted.isEmpty, "accepted after changing offsets \(accepted.prefix(20))")
    }

    @Test func truncatedOrExtendedQuotesAreUnreadable() throws {
        for n in [0, 1, 47, 48, 431, 436, 1000, quoteBytes.count - 1] {
            #expect(throws: AttestationError.self) { _ = try SGXQuote(Array(quoteBytes.prefix(n))) }
        }
        #expect(throws: AttestationError.self) { _ = try SGXQuote(quoteBytes + [0]) }
    }

    @Test func wrongRootIsRejected() throws {
        // A real self-signed certificate that is not Intel's: Azure Attestation's signing cert.
        let recording = try JSONSerialization.jsonObject(with: Data(try fixture("maa-sgx-attest-recording.json"))) as! [String: Any]
        let entries = recording["Entries"] as! [[String: Any]]
        let jwks = (entries[0]["ResponseBody"] as! [String: Any])["keys"] as! [[String: Any]]
        let other = try Certificate(der: [UInt8](Data(base64Encoded: (jwks[0]["x5c"] as! [String])[0])!))
        let report = DCAPVerifier.verify(quote: try SGXQuote(quoteBytes), collateral: collateral, root: other, at: collateralTime)
        #expect(!report.verified)
        let failure = try #require(report.checks.firstFailure)
        #expect(failure.name == "PCK certificate chain" && failure.detail.contains("pinned root"))
    }

    @Test func expiredCertificatesAndCollateralAreRejected() throws {
        let q = try SGXQuote(quoteBytes)
        // After the PCK certificate's notAfter (2030-09-20).
        let late = DCAPVerifier.verify(quote: q, collateral: collateral, at: UTCTime.parse("2031-01-01T00:00:00Z")!)
        let chain = try #require(late.checks.first { $0.name == "PCK certificate chain" })
        #expect(!chain.passed && chain.detail.contains("expired"), "\(chain.detail)")
        // After the collateral's next update: stale CRLs and TCB info.
        let stale = DCAPVerifier.verify(quote: q, collateral: collateral, at: UTCTime.parse("2025-08-01T00:00:00Z")!)
        #expect(!stale.verified)
        #expect(stale.checks.first { $0.name == "PCK certificate chain" }?.detail.contains("CRL has expired") == true)
        // Before the collateral was issued.
        let early = DCAPVerifier.verify(quote: q, collateral: collateral, at: UTCTime.parse("2025-06-01T00:00:00Z")!)
        #expect(!early.verified)
    }

    /// A test PKI shaped like Intel's (root ← CA ← PCK leaf with the real SGX extension) signs the
    /// real QE report; the same quote passes the PCK checks until the CA's CRL revokes the leaf.
    @Test func revokedPCKCertificateIsRejected() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let real = try SGXQuote(quoteBytes)
        let sgxExtension = try #require(try real.pckChain()[0].extensionValue(oid: PCKExtensions.root))
        try Data("""
            [ca]
            basicConstraints = critical, CA:TRUE
            keyUsage = critical, keyCertSign, cRLSign
            [leaf]
            basicConstraints = critical, CA:FALSE
            keyUsage = critical, digitalSignature
            1.2.840.113741.1.13.1 = DER:\(Hex.encode(sgxExtension))
            [ca_db]
            database = index.txt
            default_md = sha256
            default_crl_days = 30
            """.utf8).write(to: URL(fileURLWithPath: dir + "/x.cnf"))
        try sh("""
            set -e
            gen() { openssl ecparam -name prime256v1 -genkey -noout -out $1.key; }
            gen root; gen ca; gen leaf
            openssl req -new -x509 -key root.key -subj '/CN=Test SGX Root CA' -days 30 -sha256 \
                -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' -out root.pem
            openssl req -new -key ca.key -subj '/CN=Test PCK CA' -out ca.csr
            openssl x509 -req -in ca.csr -CA root.pem -CAkey root.key -set_serial 2 -days 30 -sha256 -extfile x.cnf -extensions ca -out ca.pem
            openssl req -new -key leaf.key -subj '/CN=Test PCK Certificate' -out leaf.csr
            openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -set_serial 3 -days 30 -sha256 -extfile x.cnf -extensions leaf -out leaf.pem
            touch index.txt
            openssl ca -config x.cnf -name ca_db -gencrl -keyfile root.key -cert root.pem -out root.crl 2>/dev/null
            openssl ca -config x.cnf -name ca_db -gencrl -keyfile ca.key -cert ca.pem -out ca-empty.crl 2>/dev/null
            openssl ca -config x.cnf -name ca_db -revoke leaf.pem -keyfile ca.key -cert ca.pem 2>/dev/null
            openssl ca -config x.cnf -name ca_db -gencrl -keyfile ca.key -cert ca.pem -out ca-revoked.crl 2>/dev/null
            for c in root ca-empty ca-revoked; do openssl crl -in $c.crl -outform DER -out $c.der; done
            openssl dgst -sha256 -sign leaf.key -out qe.sig qe-report.bin 2>/dev/null || true
            """, in: dir)
        try Data(real.qeReport.bytes).write(to: URL(fileURLWithPath: dir + "/qe-report.bin"))
        try sh("openssl dgst -sha256 -sign leaf.key -out qe.sig qe-report.bin", in: dir)
        func read(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))) }
        let chainPEM = try Certificate.chain(pem: try read("leaf.pem") + read("ca.pem") + read("root.pem")).flatMap(\.pem)
        let quote = try SGXQuote(rebuild(real, qeReportSignature: try rawSignature(try read("qe.sig")), certificationData: chainPEM + [0]))
        let root = try Certificate.chain(pem: try read("root.pem"))[0]

        func verify(_ caCRL: String) throws -> [String: Check] {
            let c = try Collateral(json: try collateralJSON(pckCRL: try read(caCRL), rootCRL: try read("root.der")))
            let report = DCAPVerifier.verify(quote: quote, collateral: c, root: root, at: UTCTime.now())
            return Dictionary(uniqueKeysWithValues: report.checks.map { ($0.name, $0) })
        }
        let good = try verify("ca-empty.der")
        #expect(good["PCK certificate chain"]?.passed == true, "\(good["PCK certificate chain"]!.detail)")
        #expect(good["QE report signature"]?.passed == true)
        let revoked = try verify("ca-revoked.der")
        let chain = try #require(revoked["PCK certificate chain"])
        #expect(!chain.passed && chain.detail.contains("revoked"), "\(chain.detail)")
        #expect(chain.detail.contains("Test PCK Certificate"))
    }

    /// The fixture collateral with other CRLs (hex DER, as the fixture has them).
    func collateralJSON(pckCRL: [UInt8], rootCRL: [UInt8]) throws -> [UInt8] {
        var object = try JSONSerialization.jsonObject(with: Data(try fixture("sgx-quote-v3.collateral.json"))) as! [String: Any]
        object["pck_crl"] = Hex.encode(pckCRL)
        object["root_ca_crl"] = Hex.encode(rootCRL)
        return [UInt8](try JSONSerialization.data(withJSONObject: object))
    }

    @Test func damagedCollateralIsReported() throws {
        let original = try JSONSerialization.jsonObject(with: Data(try fixture("sgx-quote-v3.collateral.json"))) as! [String: Any]
        for key in original.keys {
            var o = original
            o[key] = nil
            #expect(throws: AttestationError.self) { _ = try Collateral(json: [UInt8](try JSONSerialization.data(withJSONObject: o))) }
        }
        // A TCB info that was changed after Intel signed it.
        var o = original
        o["tcb_info"] = (original["tcb_info"] as! String).replacingOccurrences(of: "\"OutOfDate\"", with: "\"UpToDate\"")
        let c = try Collateral(json: [UInt8](try JSONSerialization.data(withJSONObject: o)))
        let report = DCAPVerifier.verify(quote: try SGXQuote(quoteBytes), collateral: c, at: collateralTime)
        #expect(report.checks.firstFailure?.detail == "TCB info signature does not verify")
    }
}
